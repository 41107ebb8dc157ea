"""The serving side of model integrity: the last-known-good champion on disk, and the refusal alert.

:class:`LastKnownGood` keeps a copy of every version the service loaded verified (under
``<state_dir>/last-known-good/<model>/<version>/``) and a pointer to the champion's. When the
service starts and MLflow is unreachable or the champion fails verification, that copy serves,
after it is checked again against AutoRetrain's ``model_artifacts`` record (digest and HMAC), so a
copy changed on disk is refused like a changed artifact in MLflow. :func:`alert_refusal` records a
critical ``model_integrity`` alert (log and ``alert_log``) when a version is refused (ADR 0007).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from autoretrain import registry
from autoretrain.alerts.messages import in_cooldown, integrity_alert, mlflow_model_url
from autoretrain.config import Settings
from autoretrain.registry import ModelRef

log = logging.getLogger(__name__)

POINTER = "champion.json"
KEEP_VERSIONS = 3  # verified copies kept on disk: the champion's and the latest few others


class LastKnownGood:
    """Verified copies of loaded versions on local disk and the champion's pointer."""

    def __init__(self, root: Path, *, engine: Engine, model_name: str, key: str) -> None:
        self.root, self._engine, self._name, self._key = root, engine, model_name, key

    @classmethod
    def for_settings(cls, settings: Settings, engine: Engine) -> LastKnownGood:
        root = settings.state_path / "last-known-good" / settings.model_name
        return cls(root, engine=engine, model_name=settings.model_name, key=settings.integrity_key)

    def stash(self, local: Path, ref: ModelRef) -> None:
        """Copy a just-verified folder in (a ``keep`` hook of :func:`registry.load_verified`)."""
        target = self.root / ref.version
        if target.is_dir():
            return
        staging = self.root / f".staging-{uuid.uuid4().hex[:8]}"
        try:
            shutil.copytree(local, staging)
            os.replace(staging, target)  # a reader sees the whole copy or none
        except OSError as err:  # a full or read-only disk: serving goes on, only the fallback is missing
            log.warning("could not keep a last-known-good copy of %s version %s in %s: %s", ref.name,
                        ref.version, self.root, err)
            shutil.rmtree(staging, ignore_errors=True)

    def remember(self, ref: ModelRef) -> None:
        """Make ``ref`` (the champion just published) the last-known-good; prune older copies."""
        if not (self.root / ref.version).is_dir():
            return
        meta = {"name": ref.name, "version": ref.version, "run_id": ref.run_id, "sha256": ref.sha256,
                "tags": ref.tags, "saved_at": datetime.now(UTC).isoformat()}
        tmp = self.root / f".{POINTER}.{uuid.uuid4().hex[:8]}"
        try:
            tmp.write_text(json.dumps(meta), encoding="utf-8")
            os.replace(tmp, self.root / POINTER)
        except OSError as err:
            log.warning("could not record the last-known-good champion in %s: %s", self.root, err)
            return
        log.info("last-known-good champion: %s version %s (%s)", ref.name, ref.version, self.root / ref.version)
        self._prune(keep=ref.version)

    def _prune(self, *, keep: str) -> None:
        copies = sorted((p for p in self.root.iterdir() if p.is_dir() and p.name.isdigit()),
                        key=lambda p: int(p.name), reverse=True)  # the newest versions first
        others = [p for p in copies if p.name != keep]
        for old in others[KEEP_VERSIONS - 1:]:
            shutil.rmtree(old, ignore_errors=True)

    def load(self) -> tuple[ModelRef, Any] | None:
        """The last-known-good champion, verified again against its record; None when there is none."""
        try:
            meta = json.loads((self.root / POINTER).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise registry.ModelIntegrityError(f"the last-known-good pointer {self.root / POINTER} is "
                                               f"unreadable: {err}") from err
        version = str(meta.get("version", ""))
        if meta.get("name") != self._name or not version.isdigit():
            raise registry.ModelIntegrityError(f"the last-known-good pointer {self.root / POINTER} names "
                                               f"{meta.get('name')!r} version {version!r}, not a version of "
                                               f"{self._name!r}")
        record = registry.verified_record(self._engine, self._name, version, key=self._key)
        local = self.root / version
        registry.verify_tree(local, record)
        pipeline = registry.load_model_dir(local, what=f"the last-known-good copy of {self._name} version {version}")
        tags = {str(k): str(v) for k, v in (meta.get("tags") or {}).items()}
        ref = ModelRef(name=self._name, version=version, run_id=record.run_id, source=str(local),
                       sha256=record.sha256, aliases=(registry.CHAMPION,), tags=tags)
        return ref, pipeline


def alert_refusal(settings: Settings, engine: Engine, *, alias: str, ref: ModelRef, error: Exception,
                  serving: ModelRef | None) -> None:
    """Log and record the critical ``model_integrity`` alert of a refused version (cool-down honoured)."""
    from autoretrain.alerts.store import LOGGED, SUPPRESSED, AlertStore

    alert = integrity_alert(model_name=ref.name, version=ref.version, alias=alias, reason=str(error),
                            serving_version=serving.version if serving else None,
                            mlflow_url=mlflow_model_url(settings.resolved_tracking_uri(), ref.name, ref.version))
    log.error("ALERT %s [%s] %s", alert.kind, alert.severity, alert.text)
    now = datetime.now(UTC)
    try:
        with AlertStore(engine.url.render_as_string(hide_password=False)) as store:
            held = in_cooldown(store.last_delivered(alert.dedup_key), now,
                               timedelta(minutes=settings.alert_cooldown_minutes))
            store.record(created_at=now, kind=alert.kind, severity=alert.severity, dedup_key=alert.dedup_key,
                         status=SUPPRESSED if held else LOGGED, transport="log", title=alert.title,
                         message=alert.text, error=None)
    except Exception as err:  # noqa: BLE001 - an alert table that is down must not stop the refusal
        log.error("could not record the model_integrity alert of %s version %s: %s", ref.name, ref.version, err)
