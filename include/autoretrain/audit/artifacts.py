"""The model-artifact record: the digest (and HMAC) of every version AutoRetrain registered, SQLAlchemy Core.

MLflow's tags can be written by anyone who can write to MLflow, so the digest a load is checked
against lives here, in AutoRetrain's own database (``model_artifacts``, :mod:`autoretrain.db.schema`),
written once at registration by :func:`autoretrain.registry.register_version`. With
``Settings.integrity_key`` set, each row also carries ``HMAC-SHA256(key, name|version|sha256)``:
a writer of this database without the key cannot add or change a row that verifies. With the key
empty, the row alone is the authority (ADR 0007).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from autoretrain.db.schema import model_artifacts

SKOPS = "skops"


@dataclass(frozen=True)
class ArtifactRecord:
    """One registered model version as AutoRetrain vetted it."""

    model_name: str
    version: str
    run_id: str
    sha256: str
    hmac: str
    format: str
    registered_at: datetime
    registered_by: str


def sign(key: str, *, model_name: str, version: str, sha256: str) -> str:
    """HMAC-SHA256 of (name, version, digest) under ``key``; "" without a key."""
    if not key:
        return ""
    message = "\0".join((model_name, str(version), sha256)).encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def signature_ok(record: ArtifactRecord, key: str) -> bool:
    """True when ``record`` verifies under ``key`` (no key: nothing to check beyond the row itself)."""
    if not key:
        return True
    expected = sign(key, model_name=record.model_name, version=record.version, sha256=record.sha256)
    return bool(record.hmac) and hmac.compare_digest(expected, record.hmac)


def find(engine: Engine, model_name: str, version: str) -> ArtifactRecord | None:
    """The record of ``model_name`` version ``version``, or None when AutoRetrain never registered it."""
    query = sa.select(model_artifacts).where(model_artifacts.c.model_name == model_name,
                                             model_artifacts.c.version == str(version))
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return None if row is None else ArtifactRecord(**{**dict(row), "registered_at": _utc(row["registered_at"])})


def record(engine: Engine, *, model_name: str, version: str, run_id: str, sha256: str, key: str,
           registered_by: str, fmt: str = SKOPS, at: datetime | None = None) -> ArtifactRecord:
    """Write the record of a vetted version once; a retry with the same digest returns the row written.

    A second registration of the same version with another digest raises ``ValueError``: a
    version's bytes never change after AutoRetrain vetted them.
    """
    existing = find(engine, model_name, version)
    if existing is not None:
        if existing.sha256 != sha256:
            raise ValueError(f"{model_name} version {version} is already recorded with SHA-256 "
                             f"{existing.sha256[:16]}..., not {sha256[:16]}...")
        return existing
    values: dict[str, Any] = {"model_name": model_name, "version": str(version), "run_id": run_id[:64],
                              "sha256": sha256, "format": fmt, "registered_by": registered_by[:250],
                              "hmac": sign(key, model_name=model_name, version=str(version), sha256=sha256),
                              "registered_at": at or datetime.now(UTC)}
    try:
        with engine.begin() as conn:
            conn.execute(model_artifacts.insert().values(**values))
    except sa.exc.IntegrityError:  # a concurrent retry wrote it first: same check as above
        existing = find(engine, model_name, version)
        if existing is None or existing.sha256 != sha256:
            raise
        return existing
    return ArtifactRecord(**values)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time written here is UTC
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
