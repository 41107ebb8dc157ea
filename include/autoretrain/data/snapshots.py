"""Content-addressed dataset snapshots and validation reports in the artifact store.

The artifact store is a local folder (default ``<state_dir>/artifacts``) or ``s3://bucket/prefix``
(boto3; ``AWS_ENDPOINT_URL`` points it at any S3-compatible server). A snapshot is stored under its
digest (:func:`autoretrain.data.sources.frame_digest`)::

    snapshots/<digest>/data.jsonl      one JSON array [label, text] per line: sha256(data.jsonl) == digest
    snapshots/<digest>/manifest.json   digest, rows, label counts, source, first_seen

Writing the same content again changes nothing (``first_seen`` stays the time the content was
first validated), so a retried task leaves one snapshot, and the ``first_seen`` times tell the
freshness check when new data last arrived.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import pandas as pd

from autoretrain.config import Settings
from autoretrain.data.payloads import SnapshotRecord
from autoretrain.data.sources import frame_digest, redact_uri
from autoretrain.errors import TransientError

log = logging.getLogger(__name__)

SNAPSHOTS = "snapshots"
DATA_FILE = "data.jsonl"
REPORTS = "reports"


class SnapshotError(TransientError, RuntimeError):
    """The artifact store cannot be written or read, or a snapshot does not match its digest."""


class ArtifactStore(Protocol):
    """Keyed bytes: a local folder or an S3 prefix."""

    root: str

    def put(self, key: str, data: bytes) -> str: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def keys(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...


class LocalStore:
    """Artifacts in a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self._root = root

    def put(self, key: str, data: bytes) -> str:
        path = self._root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see half a file
        return str(path)

    def get(self, key: str) -> bytes:
        try:
            return (self._root / key).read_bytes()
        except FileNotFoundError as err:
            raise SnapshotError(f"{self._root / key}: not in the artifact store") from err

    def exists(self, key: str) -> bool:
        return (self._root / key).is_file()

    def keys(self, prefix: str) -> list[str]:
        base = self._root / prefix
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self._root)) for p in base.rglob("*") if p.is_file()
                      and not p.name.endswith(".tmp"))

    def delete(self, key: str) -> None:
        """Remove ``key`` (gone already: nothing to do) and the folders it leaves empty."""
        path = self._root / key
        path.unlink(missing_ok=True)
        for parent in path.parents:
            if parent == self._root or not parent.is_relative_to(self._root) or any(parent.iterdir()):
                break
            parent.rmdir()


class S3Store:
    """Artifacts under ``s3://bucket/prefix`` (credentials and endpoint from the usual AWS settings)."""

    def __init__(self, uri: str) -> None:
        import boto3

        parsed = urlparse(uri)
        if not parsed.netloc:
            raise SnapshotError(f"{uri}: expected s3://bucket[/prefix]")
        self.root = uri.rstrip("/")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.client = boto3.client("s3")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> str:
        self._call("write", key,
                   lambda: self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data))
        return f"s3://{self.bucket}/{self._key(key)}"

    def get(self, key: str) -> bytes:
        return self._call("read", key, lambda: self.client.get_object(Bucket=self.bucket,
                                                                       Key=self._key(key))["Body"].read())

    def exists(self, key: str) -> bool:
        return bool(self.keys(key))

    def keys(self, prefix: str) -> list[str]:
        def list_all() -> list[str]:
            out = []
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=self._key(prefix))
            for page in pages:
                out += [o["Key"] for o in page.get("Contents", [])]
            return out

        strip = len(self.prefix) + 1 if self.prefix else 0
        return sorted(k[strip:] for k in self._call("list", prefix, list_all))

    def delete(self, key: str) -> None:
        self._call("delete", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=self._key(key)))

    def _call(self, action: str, key: str, fn: Any) -> Any:
        import botocore.exceptions

        try:
            return fn()
        except botocore.exceptions.ClientError as err:
            code = err.response.get("Error", {}).get("Code", "?")
            raise SnapshotError(f"{self.root}/{key}: S3 {action} failed ({code}): {err}") from err
        except botocore.exceptions.BotoCoreError as err:
            raise SnapshotError(f"{self.root}/{key}: S3 is unreachable or misconfigured: {err}") from err


def artifact_store(settings: Settings) -> ArtifactStore:
    """The configured store: ``artifact_store_uri`` (a path or s3://), default ``<state_dir>/artifacts``."""
    uri = settings.artifact_store_uri or str(settings.state_path / "artifacts")
    if uri.startswith("s3://"):
        return S3Store(uri)
    if "://" in uri and not uri.startswith("file://"):
        raise SnapshotError(f"artifact_store_uri={uri!r}: use a local path, file:// or s3://bucket/prefix")
    return LocalStore(settings.resolve_path(uri.removeprefix("file://")))


# ------------------------------------------------------------------------------------- snapshots
@dataclass(frozen=True)
class Snapshot:
    """Where a validated dataset was stored, and when its content was first seen."""

    digest: str
    rows: int
    label_counts: dict[str, int]
    source: str
    first_seen: str  # ISO 8601, UTC
    uri: str
    created: bool  # False: the same content was already stored

    def as_dict(self) -> SnapshotRecord:
        return {"digest": self.digest, "rows": self.rows, "label_counts": dict(self.label_counts),
                "source": self.source, "first_seen": self.first_seen, "uri": self.uri, "created": self.created}


def snapshot_bytes(frame: pd.DataFrame) -> bytes:
    """The bytes :func:`frame_digest` hashes: one JSON array ``[label, text]`` per line, in order."""
    rows = zip(frame["label"], frame["text"], strict=True)
    return b"".join(json.dumps([str(label), str(text)], ensure_ascii=False).encode() + b"\n"
                    for label, text in rows)


def write_snapshot(store: ArtifactStore, frame: pd.DataFrame, *, source: str, now: datetime) -> Snapshot:
    """Store ``frame`` (label, text) under its digest, once; ``now`` becomes ``first_seen`` if new."""
    data = snapshot_bytes(frame)
    digest = hashlib.sha256(data).hexdigest()
    if digest != frame_digest(frame):  # the two definitions of "content" must never drift apart
        raise SnapshotError(f"snapshot bytes hash to {digest}, frame digest is {frame_digest(frame)}")
    manifest_key = f"{SNAPSHOTS}/{digest}/manifest.json"
    if store.exists(manifest_key):
        manifest = json.loads(store.get(manifest_key))
        log.info("snapshot %s already stored (first seen %s)", digest[:12], manifest["first_seen"])
        return Snapshot(**manifest, uri=f"{store.root}/{SNAPSHOTS}/{digest}", created=False)
    counts = {str(k): int(v) for k, v in frame["label"].value_counts().sort_index().items()}
    manifest = {"digest": digest, "rows": len(frame), "label_counts": counts, "source": redact_uri(source),
                "first_seen": now.isoformat()}
    store.put(f"{SNAPSHOTS}/{digest}/{DATA_FILE}", data)
    store.put(manifest_key, json.dumps(manifest, indent=2).encode())  # last: its presence means complete
    log.info("stored snapshot %s (%d rows) in %s", digest[:12], len(frame), store.root)
    return Snapshot(**manifest, uri=f"{store.root}/{SNAPSHOTS}/{digest}", created=True)


def list_snapshots(store: ArtifactStore) -> list[dict[str, Any]]:
    """The manifests of every stored snapshot, oldest ``first_seen`` first."""
    keys = [k for k in store.keys(f"{SNAPSHOTS}/") if k.endswith("/manifest.json")]
    manifests = [json.loads(store.get(k)) for k in keys]
    return sorted(manifests, key=lambda m: m["first_seen"])


def snapshot_times(store: ArtifactStore) -> list[datetime]:
    """When each stored snapshot's content was first seen (the freshness check's evidence)."""
    return [datetime.fromisoformat(m["first_seen"]) for m in list_snapshots(store)]


def read_snapshot(store: ArtifactStore, digest: str) -> pd.DataFrame:
    """The snapshot's rows, after checking that its bytes still hash to ``digest``."""
    data = store.get(f"{SNAPSHOTS}/{digest}/{DATA_FILE}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise SnapshotError(f"snapshot {digest} is corrupt: its bytes hash to {actual}")
    rows = [json.loads(line) for line in data.split(b"\n") if line]  # not splitlines(): U+2028 is data
    return pd.DataFrame(rows, columns=["label", "text"])


def write_report(store: ArtifactStore, key_prefix: str, files: dict[str, str]) -> dict[str, str]:
    """Store report files (name -> text) under ``reports/<key_prefix>/``; returns name -> location."""
    return {name: store.put(f"{REPORTS}/{key_prefix}/{name}", text.encode()) for name, text in files.items()}
