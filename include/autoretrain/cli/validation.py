"""``autoretrain validate [SOURCE]``: the dataset checks of the weekly DAG, from the shell.

Prints the report (Markdown, or JSON with ``--json``) on stdout and exits 0 when every blocking
check passes, 1 when one fails, 2 on a usage or settings error. Freshness is judged now, over the
feedback's timestamps and the snapshot times in the artifact store (read only; nothing is written
unless ``--report-dir`` is given).

Wire it into ``autoretrain.cli.main`` with :func:`add_arguments` and :func:`run`, or call :func:`main`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from autoretrain.config import Settings, load_settings
from autoretrain.errors import EXIT_CHECK_FAILED, AutoRetrainError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``validate`` (shared by :func:`main` and the ``autoretrain`` parser)."""
    parser.add_argument("source", nargs="?", default=None,
                        help="dataset URI: path, file://, http(s)://, s3://, SQLAlchemy URL#table "
                             "(default: settings data_uri)")
    parser.add_argument("--feedback", default=None, help="feedback URI (default: settings feedback_uri)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of Markdown")
    parser.add_argument("--report-dir", type=Path, default=None,
                        help="also write report.json and report.md into this folder")
    if not any(a.dest == "config" for a in parser._actions):  # autoretrain's parser already has it
        parser.add_argument("--config", default=None, help="settings file (default: autoretrain.json)")
    return parser


def shell_settings(settings: Settings) -> Settings:
    """``settings`` for a file named on the command line: any local folder (the person at the shell can read it).

    Hosts, tables and the size cap stay those of the settings; runs through Airflow never get this.
    """
    return dataclasses.replace(settings, data_allowed_roots=(*settings.data_allowed_roots, "/"))


def run(args: argparse.Namespace) -> int:
    """Validate ``args.source`` and print the report; the exit code says whether it passed."""
    from autoretrain.data.dataset_validation import render_json, render_markdown, validate_dataset
    from autoretrain.data.snapshots import SnapshotError, artifact_store, snapshot_times

    settings = load_settings(getattr(args, "config", None))
    if args.source or args.feedback:  # a file named on the command line may be anywhere local
        settings = shell_settings(settings)
    if args.feedback is not None:
        settings = dataclasses.replace(settings, feedback_uri=args.feedback)
    try:
        times = snapshot_times(artifact_store(settings))
    except SnapshotError as err:  # freshness is judged without snapshots then; say so
        log.warning("snapshot times unavailable (%s); freshness uses feedback timestamps only", err)
        times = []
    source = args.source
    if source and "://" not in source:
        source = str(Path(source).expanduser().resolve())  # relative to where the user runs the command
    result = validate_dataset(settings, now=datetime.now(UTC), source_uri=source, snapshot_times=times)
    json_text, markdown = render_json(result), render_markdown(result)
    if args.report_dir is not None:
        args.report_dir.mkdir(parents=True, exist_ok=True)
        (args.report_dir / "report.json").write_text(json_text + "\n", encoding="utf-8")
        (args.report_dir / "report.md").write_text(markdown, encoding="utf-8")
    sys.stdout.write((json_text if args.json else markdown) + "\n")
    return 0 if result.passed else EXIT_CHECK_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m autoretrain.cli.validation SOURCE``."""
    parser = add_arguments(argparse.ArgumentParser(prog="autoretrain validate", description=__doc__.split("\n\n")[0]))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on bad usage and 0 on --help
        return int(exit_.code or 0)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return run(args)
    except AutoRetrainError as err:  # the same mapping as autoretrain.cli.main.main
        log.error("%s", err)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
