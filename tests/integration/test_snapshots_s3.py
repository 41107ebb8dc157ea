"""Snapshots and reports in an S3 artifact store (a moto S3 server on loopback, real HTTP)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime

import pandas as pd
import pytest

from autoretrain.config import Settings
from autoretrain.data.snapshots import (
    S3Store,
    SnapshotError,
    artifact_store,
    list_snapshots,
    read_snapshot,
    snapshot_times,
    write_report,
    write_snapshot,
)

pytestmark = pytest.mark.integration

FRAME = pd.DataFrame({"label": ["ham", "spam", "ham"],
                      "text": ["see you at 6", "WIN £1000 now\tcall", "line one\nline two"]})
EXPECTED = ('["ham", "see you at 6"]\n["spam", "WIN £1000 now\\tcall"]\n'
            '["ham", "line one\\nline two"]\n').encode()


@pytest.fixture
def s3(moto_server, monkeypatch):
    import boto3

    for key, value in {"AWS_ENDPOINT_URL": moto_server.endpoint, "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    client = boto3.client("s3")
    bucket = f"autoretrain-artifacts-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def test_snapshot_in_s3_is_content_addressed_and_written_once(s3):
    client, bucket = s3
    store = artifact_store(Settings(artifact_store_uri=f"s3://{bucket}/autoretrain"))
    assert isinstance(store, S3Store)
    first_seen = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    snap = write_snapshot(store, FRAME, source="s3://data/sms.tsv", now=first_seen)
    digest = hashlib.sha256(EXPECTED).hexdigest()
    assert (snap.digest, snap.created, snap.uri) == (digest, True, f"s3://{bucket}/autoretrain/snapshots/{digest}")
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [f"autoretrain/snapshots/{digest}/data.jsonl", f"autoretrain/snapshots/{digest}/manifest.json"]
    body = client.get_object(Bucket=bucket, Key=f"autoretrain/snapshots/{digest}/data.jsonl")["Body"].read()
    assert body == EXPECTED

    again = write_snapshot(store, FRAME, source="s3://data/sms.tsv", now=datetime(2026, 3, 9, tzinfo=UTC))
    assert (again.created, again.first_seen) == (False, first_seen.isoformat())
    assert [m["digest"] for m in list_snapshots(store)] == [digest]
    assert snapshot_times(store) == [first_seen]
    assert read_snapshot(store, digest).to_dict("list") == FRAME.to_dict("list")

    report = write_report(store, "dataset_validation/run_1", {"report.json": json.dumps({"passed": True})})
    assert report == {"report.json": f"s3://{bucket}/autoretrain/reports/dataset_validation/run_1/report.json"}


def test_tampered_snapshot_and_missing_bucket_are_named(s3):
    client, bucket = s3
    store = artifact_store(Settings(artifact_store_uri=f"s3://{bucket}"))
    snap = write_snapshot(store, FRAME, source="x", now=datetime(2026, 3, 2, tzinfo=UTC))
    client.put_object(Bucket=bucket, Key=f"snapshots/{snap.digest}/data.jsonl", Body=EXPECTED + b'["ham", "x"]\n')
    with pytest.raises(SnapshotError, match=f"snapshot {snap.digest} is corrupt"):
        read_snapshot(store, snap.digest)
    gone = artifact_store(Settings(artifact_store_uri="s3://autoretrain-no-such-bucket-4242"))
    with pytest.raises(SnapshotError, match=r"s3://autoretrain-no-such-bucket-4242/snapshots/: S3 list failed "
                                            r"\(NoSuchBucket\)"):
        list_snapshots(gone)


def test_the_snapshot_purge_deletes_in_s3_too(s3):
    """Retention (issue 12): old snapshots beyond snapshot_keep go, the newest and the referenced stay."""
    from autoretrain.maintenance.artifacts import purge_artifacts

    client, bucket = s3
    store = artifact_store(Settings(artifact_store_uri=f"s3://{bucket}/autoretrain"))
    digests = [write_snapshot(store, FRAME.iloc[: i + 1], source="s", now=datetime(2026, 3, 1 + i, tzinfo=UTC)).digest
               for i in range(3)]
    done = purge_artifacts(store, keep=1, referenced={digests[0]}, reports_before=datetime(2026, 1, 1, tzinfo=UTC))
    assert done["snapshots_deleted"] == [digests[1]]
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(f"autoretrain/snapshots/{d}/{name}" for d in (digests[0], digests[2])
                          for name in ("data.jsonl", "manifest.json"))
