"""Content-addressed snapshots and reports in a local artifact store."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from autoretrain.config import Settings
from autoretrain.data.snapshots import (
    LocalStore,
    SnapshotError,
    artifact_store,
    list_snapshots,
    read_snapshot,
    snapshot_bytes,
    snapshot_times,
    write_report,
    write_snapshot,
)
from autoretrain.data.sources import frame_digest

FRAME = pd.DataFrame({"label": ["ham", "spam"], "text": ["see you\u2028later", "WIN\tnow\ncall"]})
T1, T2 = datetime(2026, 3, 2, 8, tzinfo=UTC), datetime(2026, 3, 9, 8, tzinfo=UTC)


def test_store_location_from_settings(tmp_path):
    assert artifact_store(Settings(state_dir=str(tmp_path))).root == str(tmp_path / "artifacts")
    assert artifact_store(Settings(artifact_store_uri=f"file://{tmp_path}/a")).root == f"{tmp_path}/a"
    with pytest.raises(SnapshotError, match="use a local path, file:// or s3://bucket/prefix"):
        artifact_store(Settings(artifact_store_uri="gs://bucket/x"))


def test_snapshot_is_named_by_its_digest_and_written_once(tmp_path):
    store = LocalStore(tmp_path)
    assert snapshot_bytes(FRAME) == b'["ham", "see you\xe2\x80\xa8later"]\n["spam", "WIN\\tnow\\ncall"]\n'
    digest = hashlib.sha256(snapshot_bytes(FRAME)).hexdigest()
    assert digest == frame_digest(FRAME)
    first = write_snapshot(store, FRAME, source="postgresql://u:secret@db/x#sms", now=T1)
    assert (first.digest, first.rows, first.label_counts, first.created) == (digest, 2, {"ham": 1, "spam": 1}, True)
    assert first.source == "postgresql://u:***@db/x#sms"
    assert sorted(p.name for p in (tmp_path / "snapshots" / digest).iterdir()) == ["data.jsonl", "manifest.json"]
    second = write_snapshot(store, FRAME, source="elsewhere", now=T2)
    assert (second.created, second.first_seen, second.source) == (False, T1.isoformat(), first.source)
    assert read_snapshot(store, digest).to_dict("list") == FRAME.to_dict("list")

    newer = write_snapshot(store, FRAME.iloc[:1], source="x", now=T2)
    assert [m["digest"] for m in list_snapshots(store)] == [digest, newer.digest]
    assert snapshot_times(store) == [T1, T2]


def test_a_changed_snapshot_is_refused(tmp_path):
    store = LocalStore(tmp_path)
    snap = write_snapshot(store, FRAME, source="x", now=T1)
    (tmp_path / "snapshots" / snap.digest / "data.jsonl").write_bytes(b'["ham", "edited"]\n')
    with pytest.raises(SnapshotError, match=f"snapshot {snap.digest} is corrupt: its bytes hash to"):
        read_snapshot(store, snap.digest)
    with pytest.raises(SnapshotError, match="not in the artifact store"):
        read_snapshot(store, "0" * 64)


def test_reports_and_keys(tmp_path):
    store = LocalStore(tmp_path)
    where = write_report(store, "dataset_validation/run_1", {"report.json": json.dumps({"passed": False}),
                                                             "report.md": "# Dataset validation: FAILED"})
    assert where == {"report.json": str(tmp_path / "reports/dataset_validation/run_1/report.json"),
                     "report.md": str(tmp_path / "reports/dataset_validation/run_1/report.md")}
    assert store.keys("reports/") == ["reports/dataset_validation/run_1/report.json",
                                      "reports/dataset_validation/run_1/report.md"]
    assert store.keys("nothing/") == [] and list_snapshots(store) == []
