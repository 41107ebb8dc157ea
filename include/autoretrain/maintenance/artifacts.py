"""Delete old dataset snapshots and validation reports from the artifact store.

Snapshots (``snapshots/<digest>/``): the newest ``snapshot_keep`` by ``first_seen`` stay, and so
does every snapshot whose digest a registered model version was trained on (its training run's
data or base digest, :func:`autoretrain.tracking.version_data_digests`), so the data behind any
version that could serve again is still there. The manifest goes first: a snapshot without one
is incomplete to every reader. Validation reports (``reports/<dag>/<run>/``) older than
``retention_days`` (by the time they judged, ``now`` in ``report.json``) are deleted.

Evidently reports are MLflow artifacts of the monitoring runs, never stored locally: MLflow's
own retention (``mlflow gc``) covers them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from autoretrain.config import Settings
from autoretrain.data.snapshots import REPORTS, SNAPSHOTS, ArtifactStore, list_snapshots
from autoretrain.maintenance.retention import plain_utc

log = logging.getLogger(__name__)


class ArtifactsPurgeRecord(TypedDict):
    """:func:`purge_artifacts`: the XCom of ``purge_artifacts`` and the CLI's output."""

    dry_run: bool
    snapshots_kept: list[str]
    snapshots_deleted: list[str]
    reports_deleted: list[str]
    seconds: float


def snapshots_to_delete(manifests: list[dict[str, object]], *, keep: int, referenced: Collection[str]) -> list[str]:
    """Digests to delete: all but the newest ``keep`` (by ``first_seen``) and the ``referenced`` ones."""
    newest_first = sorted(manifests, key=lambda m: str(m["first_seen"]), reverse=True)
    return [str(m["digest"]) for m in newest_first[keep:] if str(m["digest"]) not in referenced]


def purge_snapshots(store: ArtifactStore, *, keep: int, referenced: Collection[str],
                    dry_run: bool = False) -> tuple[list[str], list[str]]:
    """(kept, deleted) digests; see :func:`snapshots_to_delete`."""
    manifests = list_snapshots(store)
    doomed = snapshots_to_delete(manifests, keep=keep, referenced=referenced)
    for digest in doomed if not dry_run else []:
        prefix = f"{SNAPSHOTS}/{digest}/"
        keys = store.keys(prefix)
        for key in sorted(keys, key=lambda k: not k.endswith("manifest.json")):  # the manifest first
            store.delete(key)
        log.info("retention: deleted snapshot %s (%d file(s))", digest[:12], len(keys))
    kept = [str(m["digest"]) for m in manifests if str(m["digest"]) not in doomed]
    return kept, doomed


def purge_reports(store: ArtifactStore, *, before: datetime, dry_run: bool = False) -> list[str]:
    """Delete validation report folders that judged data before ``before``; their prefixes."""
    folders: dict[str, list[str]] = {}
    for key in store.keys(f"{REPORTS}/"):
        folders.setdefault(key.rsplit("/", 1)[0], []).append(key)
    doomed = []
    for folder, keys in sorted(folders.items()):
        judged = _judged_at(store, f"{folder}/report.json") if f"{folder}/report.json" in keys else None
        if judged is None or judged >= before:
            continue  # no readable time: keep (it may be someone's)
        doomed.append(folder)
        for key in keys if not dry_run else []:
            store.delete(key)
    if doomed:
        log.info("retention: %s %d validation report(s) older than %s", "would delete" if dry_run else "deleted",
                 len(doomed), before.isoformat())
    return doomed


def purge_artifacts(store: ArtifactStore, *, keep: int, referenced: Collection[str], reports_before: datetime,
                    dry_run: bool = False) -> ArtifactsPurgeRecord:
    """Snapshots, then reports; the digests and folders touched."""
    started = time.monotonic()
    kept, deleted = purge_snapshots(store, keep=keep, referenced=referenced, dry_run=dry_run)
    reports = purge_reports(store, before=reports_before, dry_run=dry_run)
    seconds = round(time.monotonic() - started, 3)
    log.info("retention: %s %d snapshot(s) (kept %d) and %d report(s) in %.1f s",
             "would delete" if dry_run else "deleted", len(deleted), len(kept), len(reports), seconds)
    return {"dry_run": dry_run, "snapshots_kept": kept, "snapshots_deleted": deleted, "reports_deleted": reports,
            "seconds": seconds}


def reports_cutoff(now: datetime, retention_days: int) -> datetime:
    """Reports that judged data before this are old enough to go."""
    return plain_utc(now) - timedelta(days=retention_days)


def _judged_at(store: ArtifactStore, key: str) -> datetime | None:
    try:
        value = json.loads(store.get(key)).get("now")
        when = datetime.fromisoformat(str(value))
    except (ValueError, AttributeError, TypeError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def purge_store(settings: Settings, *, now: datetime, dry_run: bool = False) -> ArtifactsPurgeRecord:
    """:func:`purge_artifacts` on the configured artifact store, keeping what MLflow's versions used."""
    from autoretrain import tracking
    from autoretrain.data.snapshots import artifact_store

    referenced = tracking.version_data_digests(tracking.client_for(settings), settings.model_name)
    log.info("retention: %d data digest(s) referenced by versions of %s", len(referenced), settings.model_name)
    return purge_artifacts(artifact_store(settings), keep=settings.snapshot_keep, referenced=referenced,
                           reports_before=reports_cutoff(now, settings.retention_days), dry_run=dry_run)
