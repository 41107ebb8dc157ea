"""``autoretrain`` command line: the same functions the DAGs run, without Airflow.

    autoretrain train [--data URI] [--families a,b] [--cv-folds N] [--no-promote]
                                           champion when there is none; else the version waits for its rollout
    autoretrain validate [SOURCE] [--feedback URI] [--json] [--report-dir DIR]
    autoretrain drift --current FILE [--reference FILE] [--model URI]
    autoretrain promote [VERSION] [--reason R] [--force] [--dry-run]
    autoretrain rollback [--to VERSION] --reason R
    autoretrain audit [--alias A] [--limit N]   the append-only record of alias moves
    autoretrain audit reconcile            MLflow's aliases against the audit (external moves: alert, exit 1)
    autoretrain serve [--host H] [--port P]   the prediction service on models:/<name>@champion
    autoretrain models                     versions and aliases of the registered model
    autoretrain vet VERSION --by NAME      vouch for a version AutoRetrain has no record of (vetted, recorded)
    autoretrain db upgrade|downgrade|current|history   AutoRetrain's database migrations
    autoretrain maintenance purge [--dry-run]   retention: old rows, old texts, old snapshots
    autoretrain settings                   the effective settings (file + environment)

Every command reads ``autoretrain.json`` and ``AUTORETRAIN_*`` variables; ``--tracking-uri``
points at an MLflow server (default: ``$MLFLOW_TRACKING_URI``, else a local SQLite store).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from autoretrain import lineage
from autoretrain.config import Settings, load_settings, redact_url
from autoretrain.errors import AutoRetrainError

log = logging.getLogger("autoretrain")


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = {"tracking_uri": args.tracking_uri, "model_name": args.model_name, **extra}
    return load_settings(args.config).with_overrides(overrides)


def cmd_train(args: argparse.Namespace) -> int:
    """Run the training lifecycle in this process and print its summary as JSON."""
    from autoretrain.training.steps import RunKey, run_training

    families = args.families.split(",") if args.families else None
    settings = _settings(args, data_uri=args.data, families=families, cv_folds=args.cv_folds,
                         promote=False if args.no_promote else None)
    key = RunKey(dag_id="cli", run_id=args.run_id or time.strftime("cli__%Y-%m-%dT%H:%M:%S"))
    result = run_training(settings, key)
    summary: dict[str, Any] = {"selected": result["selected"], "alias": result["alias"], "seconds": result["seconds"]}
    summary["version"] = result["registered"]["version"]
    summary["holdout"] = {k: round(result["holdout"][k], 4)
                          for k in ("accuracy", "f1", "mcc", "fpr", "ece", "roc_auc", "pr_auc", "brier")}
    summary["gate"] = result["gate"]
    if result["alias"].get("rollout"):  # a champion exists: the one rollout path decides, not this command
        summary["next"] = (f"version {summary['version']} waits for its rollout: trigger retrain_compare_promote "
                           f"with conf {{\"version\": \"{summary['version']}\"}} (compare, canary, approval), "
                           f"or `autoretrain promote {summary['version']}` (compare, no canary; auto mode only)")
    summary["tracking_uri"] = redact_url(settings.resolved_tracking_uri())
    print(json.dumps(summary if not args.verbose_json else result, indent=2, default=str))
    return 0 if result["gate"]["passed"] else 1


def cmd_models(args: argparse.Namespace) -> int:
    """List the registered versions of the model with their aliases and key metrics."""
    from autoretrain import tracking
    from autoretrain.data.sources import redact_uri

    settings = _settings(args)
    client = tracking.client_for(settings)
    versions = client.search_model_versions(f"name = '{settings.model_name}'")
    aliases: dict[str, list[str]] = {}
    if versions:  # search results carry no aliases; the registered model has them all
        for alias, version in client.get_registered_model(settings.model_name).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
    rows = []
    for mv in sorted(versions, key=lambda v: int(v.version)):
        tags = mv.tags or {}
        rows.append({"version": mv.version, "aliases": sorted(aliases.get(str(mv.version), [])),
                     "family": tags.get(lineage.FAMILY), "gates": tags.get(lineage.GATES),
                     "holdout_f1": tags.get("holdout_f1"), "created": mv.creation_timestamp})
    store = settings.resolved_tracking_uri()
    if not rows:  # say which store was read: an empty answer from the wrong store looks like an empty registry
        log.warning("no versions of %s in the MLflow store %s (set --tracking-uri or MLFLOW_TRACKING_URI for "
                    "another one; `make demo` and `make up` use this checkout's store)", settings.model_name,
                    redact_uri(store))
    print(json.dumps({"model": settings.model_name, "tracking_uri": redact_uri(store), "versions": rows}, indent=2))
    return 0


def cmd_vet(args: argparse.Namespace) -> int:
    """Vet a registered version AutoRetrain has no ``model_artifacts`` record of and record it (ADR 0007)."""
    from autoretrain import registry, tracking
    from autoretrain.db.engine import database_url, make_engine
    from autoretrain.db.migrate import check_schema

    settings = _settings(args)
    engine = make_engine(database_url(settings))
    try:
        check_schema(engine)
        record = registry.vet_version(tracking.client_for(settings), engine, name=settings.model_name,
                                      version=str(args.version), key=settings.integrity_key,
                                      vetted_by=f"vetted by {args.by}")
    finally:
        engine.dispose()
    print(json.dumps({"model": record.model_name, "version": record.version, "sha256": record.sha256,
                      "registered_by": record.registered_by, "registered_at": record.registered_at.isoformat()},
                     indent=2))
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    """Drift of a file of messages against a reference file or the champion; the report as JSON."""
    from autoretrain import registry, tracking
    from autoretrain.cli.validation import shell_settings
    from autoretrain.data.sources import DataSourceError, SourcePolicy, read_bytes
    from autoretrain.monitoring.drift import Sample, run_checks
    from autoretrain.monitoring.payloads import DriftReportRecord
    from autoretrain.monitoring.windows import adhoc_drift, load_champion

    settings = _settings(args)
    policy = SourcePolicy.from_settings(shell_settings(settings))
    texts, labels = _messages(read_bytes(args.current, policy=policy).decode("utf-8", errors="replace"),
                              settings.labels)
    report: DriftReportRecord
    if args.reference is None and args.model is None:
        report = adhoc_drift(settings, load_champion(settings, tracking.client_for(settings)), texts, labels)
    else:
        model = None
        if args.model:
            name, _, ref = args.model.removeprefix("models:/").replace("@", "/").partition("/")
            model, _ = registry.load_trusted(settings, tracking.client_for(settings), ref or registry.CHAMPION,
                                             name=name)
        ref_texts = (_messages(read_bytes(args.reference, policy=policy).decode("utf-8", errors="replace"),
                               settings.labels)[0]
                     if args.reference else None)
        if ref_texts is None:
            raise DataSourceError("--model without --reference: give --reference FILE, or neither to use "
                                  "the champion's training data")
        report = run_checks(Sample(texts=ref_texts), Sample(texts=texts), model=model, labels=labels,
                            drift_threshold=settings.drift_threshold, positive_label=settings.positive_label,
                            min_window_size=settings.drift_min_window_size).as_dict()
    print(json.dumps(report, indent=2, default=str))
    return 1 if report.get("drifted") else 0


def _messages(text: str, labels: Sequence[str]) -> tuple[list[str], list[str | None] | None]:
    """Messages of a ``label<TAB>text`` or ``text``-per-line file, with the labels where present."""
    texts, found = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        head, tab, rest = line.partition("\t")
        labelled = bool(tab) and head.strip() in labels
        texts.append(rest if labelled else line)
        found.append(head.strip() if labelled else None)
    return texts, (found if any(label is not None for label in found) else None)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the prediction service on the champion until SIGTERM/SIGINT."""
    from autoretrain.serving.server import run

    run(_settings(args), host=args.host, port=args.port)
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    """Print the effective settings."""
    print(json.dumps(_settings(args).public(), indent=2))
    return 0


def _common_options(default: Any) -> argparse.ArgumentParser:
    """Options accepted before or after the command (a fresh parser each time: actions are shared)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=default,
                        help="settings file (default: autoretrain.json or $AUTORETRAIN_CONFIG)")
    common.add_argument("--tracking-uri", default=default,
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    common.add_argument("--model-name", default=default,
                        help="registered model name (default: settings model_name)")
    common.add_argument("-q", "--quiet", action="store_true",
                        default=False if default is None else default,
                        help="only warnings and errors on stderr")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoretrain", description=__doc__.split("\n\n")[0],
                                     parents=[_common_options(None)])
    sub = parser.add_subparsers(dest="command", required=True)
    sub_parser = sub.add_parser

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        # SUPPRESS: an option given before the command is not reset by the command's parser
        return sub_parser(name, parents=[_common_options(argparse.SUPPRESS)], **kwargs)

    sub.add_parser = add  # type: ignore[method-assign]

    train = sub.add_parser("train", help="train, evaluate, register and alias a model")
    train.add_argument("--data", help="dataset URI (path, file://, http(s)://, s3://, SQLAlchemy URL#table)")
    train.add_argument("--families", help="comma-separated model families, e.g. logreg,linear_svm")
    train.add_argument("--cv-folds", type=int, help="stratified CV folds of the search")
    train.add_argument("--no-promote", action="store_true", help="register without assigning an alias")
    train.add_argument("--run-id", help="idempotency key: the same id resumes the same MLflow run")
    train.add_argument("--verbose-json", action="store_true", help="print every step's result")
    train.set_defaults(func=cmd_train)

    from autoretrain.cli import validation as validation_cli

    validate = sub.add_parser("validate", help="run the dataset checks on SOURCE; exit 1 when a blocking check fails")
    validation_cli.add_arguments(validate)
    validate.set_defaults(func=validation_cli.run)

    drift = sub.add_parser("drift", help="drift of a batch of messages vs a reference (exit 1 when drifted)")
    drift.add_argument("--current", required=True, help="messages: `label<TAB>text` or `text` per line (URI)")
    drift.add_argument("--reference", help="reference messages (default: the champion's training data)")
    drift.add_argument("--model", help="models:/<name>@<alias> or models:/<name>/<version> to score with")
    drift.set_defaults(func=cmd_drift)

    serve = sub.add_parser("serve", help="run the prediction service (uvicorn, one worker per process)")
    serve.add_argument("--host", help="bind address (default: settings serving_host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: settings serving_port, 8000)")
    serve.set_defaults(func=cmd_serve)

    from autoretrain.cli import promotion as promotion_cli

    promotion_cli.add_commands(sub)

    from autoretrain.cli import db as db_cli

    db_cli.add_commands(sub)

    from autoretrain.cli import maintenance as maintenance_cli

    maintenance_cli.add_commands(sub)

    sub.add_parser("models", help="registered versions and aliases").set_defaults(func=cmd_models)
    sub.add_parser("settings", help="print the effective settings").set_defaults(func=cmd_settings)
    vet = sub.add_parser("vet", help="vouch for a registered version AutoRetrain has no record of (e.g. one "
                                     "registered before revision 0003): vetted as at registration, then recorded")
    vet.add_argument("version", help="the version number")
    vet.add_argument("--by", required=True, help="who vouches for it (recorded as registered_by)")
    vet.set_defaults(func=cmd_vet)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("urllib3", "alembic", "botocore", "mlflow.store", "mlflow.tracking"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except AutoRetrainError as err:  # every expected failure: one line, and the error's exit code
        hint = " (a transient fault: the same command may succeed later)" if err.retryable else ""
        log.error("%s%s", err, hint)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
