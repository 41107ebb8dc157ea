"""Which snapshots and reports the purge deletes, on a local artifact store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd

from autoretrain.data.snapshots import LocalStore, list_snapshots, write_report, write_snapshot
from autoretrain.maintenance.artifacts import purge_artifacts, snapshots_to_delete

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _manifest(digest: str, days_ago: int) -> dict[str, object]:
    return {"digest": digest, "first_seen": (NOW - timedelta(days=days_ago)).isoformat()}


def test_the_newest_k_and_the_referenced_ones_stay():
    manifests = [_manifest(d, age) for d, age in (("a", 50), ("b", 40), ("c", 30), ("d", 20), ("e", 10))]
    assert snapshots_to_delete(manifests, keep=2, referenced={"b"}) == ["c", "a"]
    assert snapshots_to_delete(manifests, keep=10, referenced=()) == []
    assert snapshots_to_delete(manifests, keep=1, referenced={"a", "b", "c", "d"}) == []


def test_purge_deletes_files_and_empty_folders_and_a_dry_run_nothing(tmp_path):
    store = LocalStore(tmp_path / "artifacts")
    digests = [write_snapshot(store, pd.DataFrame({"label": ["ham"], "text": [f"t{i}"]}), source="s",
                              now=NOW - timedelta(days=10 - i)).digest for i in range(3)]
    write_report(store, "dataset_validation/old", {"report.json": json.dumps({"now": "2026-01-01T00:00:00+00:00"})})
    write_report(store, "dataset_validation/odd", {"report.md": "no time: kept"})
    dry = purge_artifacts(store, keep=1, referenced={digests[0]}, reports_before=NOW - timedelta(days=90),
                          dry_run=True)
    assert (dry["snapshots_deleted"], dry["reports_deleted"]) == ([digests[1]], ["reports/dataset_validation/old"])
    assert len(list_snapshots(store)) == 3
    done = purge_artifacts(store, keep=1, referenced={digests[0]}, reports_before=NOW - timedelta(days=90))
    assert done["snapshots_deleted"] == [digests[1]] and sorted(done["snapshots_kept"]) == sorted(
        [digests[0], digests[2]])
    assert not (tmp_path / "artifacts" / "snapshots" / digests[1]).exists()
    assert store.keys("reports/") == ["reports/dataset_validation/odd/report.md"]
