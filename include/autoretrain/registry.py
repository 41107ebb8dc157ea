"""The only door to the MLflow model registry: versions, aliases, and artifact integrity.

Consumers load ``models:/<name>@champion``. Each registered version carries the SHA-256 of its
model artifact (tag ``autoretrain.sha256``); every load recomputes and compares it, and a
tampered artifact is refused with :class:`ModelIntegrityError`.

Every alias move goes through :func:`move_alias`, which records it in the append-only
``alias_audit`` table (:mod:`autoretrain.audit.aliases`) in the same transaction: the rows are written
first, the aliases moved in MLflow, and the transaction committed only after MLflow accepted every
move. If MLflow refuses or is unreachable, the aliases already moved are put back, nothing is
recorded, and :class:`AliasMoveError` is raised so the caller (an Airflow task) retries.
Promoting a new ``champion`` records the replaced one as ``previous``; :func:`rollback_champion`
restores it in one step.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import tempfile
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import Engine

from autoretrain import lineage
from autoretrain.audit import aliases as audit
from autoretrain.errors import AutoRetrainError, TransientError
from autoretrain.promotion.payloads import AliasChange, AliasMoveRecord
from autoretrain.training.payloads import RegisteredVersion

log = logging.getLogger(__name__)

CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"
PREVIOUS: Final = "previous"


class RegistryError(AutoRetrainError, RuntimeError):
    """A registry lookup or update failed (unknown model, alias or version)."""


class AliasMoveError(TransientError, RuntimeError):
    """An alias move did not happen (MLflow or the audit table failed); nothing moved, nothing recorded."""


class ModelIntegrityError(AutoRetrainError, RuntimeError):
    """A model artifact's SHA-256 does not match the one recorded at registration."""


@dataclass(frozen=True)
class ModelRef:
    """A registered model version as AutoRetrain sees it."""

    name: str
    version: str
    run_id: str | None
    source: str | None
    sha256: str | None
    aliases: tuple[str, ...]
    tags: dict[str, str]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def as_dict(self) -> RegisteredVersion:
        return {"name": self.name, "version": self.version, "run_id": self.run_id, "source": self.source,
                "sha256": self.sha256, "aliases": list(self.aliases)}


def tree_sha256(root: str | Path) -> str:
    """SHA-256 over every file below ``root``: relative path and content, in sorted order."""
    root = Path(root)
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if not files:
        raise ModelIntegrityError(f"{root} holds no files to hash")
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def _ref(mv: ModelVersion) -> ModelRef:
    return ModelRef(name=mv.name, version=str(mv.version), run_id=mv.run_id, source=mv.source,
                    sha256=(mv.tags or {}).get(lineage.SHA256), aliases=tuple(getattr(mv, "aliases", []) or []),
                    tags=dict(mv.tags or {}))


def get_version(client: MlflowClient, name: str, ref: str) -> ModelRef:
    """The version ``ref`` of ``name``: a version number, or an alias such as ``champion``."""
    try:
        mv = client.get_model_version(name, ref) if ref.isdigit() else client.get_model_version_by_alias(name, ref)
    except MlflowException as err:
        raise RegistryError(f"model {name!r} has no version or alias {ref!r}: {err.message}") from err
    return _ref(mv)


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelRef | None:
    """The version holding ``alias``, or None when the alias (or the model) does not exist."""
    try:
        return _ref(client.get_model_version_by_alias(name, alias))
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def register_version(client: MlflowClient, *, name: str, model_uri: str, run_id: str,
                     tags: dict[str, str] | None = None) -> ModelRef:
    """Register ``model_uri`` under ``name`` with its SHA-256; reuse the version of ``run_id`` if any."""
    existing = _version_of_run(client, name, run_id)
    if existing is not None and existing.sha256:
        log.info("model %s version %s already registered for run %s", name, existing.version, run_id)
        return existing
    if existing is None:
        mv = mlflow.register_model(model_uri, name, tags=tags or {})
        version = str(mv.version)
    else:  # registered, but a previous attempt died before tagging it
        version = existing.version
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        sha = tree_sha256(local)
    client.set_model_version_tag(name, version, lineage.SHA256, sha)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, str(value))
    log.info("registered %s version %s (sha256 %s...) from %s", name, version, sha[:12], model_uri)
    return get_version(client, name, version)


def _version_of_run(client: MlflowClient, name: str, run_id: str) -> ModelRef | None:
    try:
        versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:
        return None
    return _ref(max(versions, key=lambda v: int(v.version))) if versions else None


def set_alias(client: MlflowClient, name: str, alias: str, version: str) -> None:
    """Point ``alias`` of ``name`` at ``version`` WITHOUT an audit record (tests, fixtures); use :func:`move_alias`."""
    client.set_registered_model_alias(name, alias, version)
    log.info("alias %s@%s -> version %s", name, alias, version)


# ---------------------------------------------------------------------------- audited alias moves
PREVIOUS_MODES = ("record", "clear", "keep")


@dataclass(frozen=True)
class AliasMove:
    """The outcome of :func:`move_alias`: the changes recorded (``replayed``: found from an earlier try)."""

    move_id: str
    name: str
    changes: tuple[AliasChange, ...]  # in the order MLflow applied them
    replayed: bool = False

    def version_of(self, alias: str) -> str | None:
        """The version ``alias`` points at after the move (KeyError if the move did not touch it)."""
        return next(c["to_version"] for c in self.changes if c["alias"] == alias)

    def as_dict(self) -> AliasMoveRecord:
        return {"move_id": self.move_id, "name": self.name, "changes": [c.copy() for c in self.changes],
                "replayed": self.replayed}


def move_alias(client: MlflowClient, engine: Engine, *, name: str, alias: str, version: str | None, actor: str,
               reason: str, run_id: str, action: str = "move", reasons: Sequence[str] = (),
               metrics: Mapping[str, Any] | None = None, previous: str = "record",
               at: datetime | None = None) -> AliasMove:
    """Point ``alias`` at ``version`` (None: remove it) and record who/what/why; both happen or neither.

    ``previous`` matters only for ``alias="champion"``: ``record`` makes the replaced champion the
    ``previous`` alias, ``clear`` removes ``previous`` (a rollback), ``keep`` leaves it alone. A retry
    with the same ``run_id``, alias, action and version returns the recorded move without moving
    anything again.
    """
    if previous not in PREVIOUS_MODES:
        raise ValueError(f"previous={previous!r} is not one of {PREVIOUS_MODES}")
    key = audit.idempotency_key(run_id=run_id, model_name=name, alias=alias, action=action, to_version=version)
    done: list[AliasChange] = []
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            audit.lock_model(conn, name)
            recorded = audit.find(conn, key)
            if recorded:
                trans.rollback()
                log.info("alias move %s already recorded (move %s); nothing to do", key, recorded[0].move_id)
                return _as_move(recorded, replayed=True)
            changes = _plan(client, name, alias, version, previous)
            move_id = str(uuid.uuid4())
            base = {"created_at": at or datetime.now(UTC), "move_id": move_id, "model_name": name,
                    "action": action, "actor": actor[:250], "run_id": run_id[:250], "reason": reason,
                    "reasons": list(reasons), "metrics": dict(metrics or {})}
            audit.insert(conn, [{**base, **change, "idempotency_key": audit.idempotency_key(
                run_id=run_id, model_name=name, alias=change["alias"], action=action,
                to_version=change["to_version"])} for change in changes])
            for change in changes:
                _apply(client, name, change["alias"], change["to_version"])
                done.append(change)
            trans.commit()  # only now: MLflow accepted every move
        except Exception as err:
            _undo(client, name, done)
            if trans.is_active:
                trans.rollback()
            if isinstance(err, ValueError | RegistryError):
                raise
            raise AliasMoveError(f"moving {name}@{alias} to version {version} failed and was undone; nothing was "
                                 f"recorded, retry when MLflow and the database answer: {type(err).__name__}: "
                                 f"{err}") from err
    for change in changes:
        log.info("alias %s@%s: version %s -> %s (%s by %s: %s)", name, change["alias"], change["from_version"],
                 change["to_version"], action, actor, reason)
    return AliasMove(move_id=move_id, name=name, changes=tuple(changes))


def rollback_champion(client: MlflowClient, engine: Engine, *, name: str, actor: str, reason: str, run_id: str,
                      to_version: str | None = None, metrics: Mapping[str, Any] | None = None) -> AliasMove:
    """Put ``champion`` back on the ``previous`` version (or ``to_version``) and clear ``previous``."""
    target = to_version
    if target is None:
        previous = alias_version(client, name, PREVIOUS)
        done = audit.recorded(engine, model_name=name, run_id=run_id, alias=CHAMPION, action="rollback")
        if previous is None and done:  # a retry of a rollback that happened: replay it
            return _as_move(done, replayed=True)
        if previous is None:
            raise RegistryError(f"model {name!r} has no {PREVIOUS!r} alias: no earlier champion is recorded to "
                                "roll back to; name a version explicitly")
        target = previous.version
    return move_alias(client, engine, name=name, alias=CHAMPION, version=target, actor=actor, reason=reason,
                      run_id=run_id, action="rollback", reasons=[reason], metrics=metrics, previous="clear")


def _plan(client: MlflowClient, name: str, alias: str, version: str | None,
          previous: str) -> list[AliasChange]:
    """The alias changes of a move, in the order they are applied (read from MLflow now)."""
    if version is not None:
        _require_version(client, name, version)
    current = alias_version(client, name, alias)
    main: AliasChange = {"alias": alias, "from_version": current.version if current else None, "to_version": version}
    if alias != CHAMPION or previous == "keep" or main["from_version"] == version:
        return [main]
    prev = alias_version(client, name, PREVIOUS)
    prev_version = prev.version if prev else None
    if previous == "record" and main["from_version"] is not None and prev_version != main["from_version"]:
        # previous first: if the champion move then fails, previous == champion is harmless (and undone)
        return [{"alias": PREVIOUS, "from_version": prev_version, "to_version": main["from_version"]}, main]
    if previous == "clear" and prev_version is not None:
        return [main, {"alias": PREVIOUS, "from_version": prev_version, "to_version": None}]
    return [main]


def _require_version(client: MlflowClient, name: str, version: str) -> None:
    """RegistryError (not worth a retry) for an unknown version; MLflow being down raises as it is."""
    try:
        client.get_model_version(name, version)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise RegistryError(f"model {name!r} has no version {version!r}; nothing was moved") from err
        raise


def _apply(client: MlflowClient, name: str, alias: str, version: str | None) -> None:
    if version is None:
        client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, version)


def _undo(client: MlflowClient, name: str, done: Sequence[AliasChange]) -> None:
    """Put the aliases already moved back where they were (best effort, newest first)."""
    for change in reversed(done):
        try:
            _apply(client, name, change["alias"], change["from_version"])
            log.warning("undid %s@%s -> %s (back to %s)", name, change["alias"], change["to_version"],
                        change["from_version"])
        except Exception as err:  # noqa: BLE001 - keep undoing the rest; say loudly what is left
            log.error("could not undo %s@%s -> %s (it should be %s again): %s; fix it with `autoretrain "
                      "rollback` or the MLflow UI", name, change["alias"], change["to_version"],
                      change["from_version"], err)


def _as_move(records: Sequence[audit.AuditRecord], *, replayed: bool) -> AliasMove:
    changes = tuple(AliasChange(alias=r.alias, from_version=r.from_version, to_version=r.to_version) for r in records)
    return AliasMove(move_id=records[0].move_id, name=records[0].model_name, changes=changes, replayed=replayed)


def download_verified(client: MlflowClient, name: str, ref: str, dst: str | Path) -> tuple[Path, ModelRef]:
    """Download version/alias ``ref`` into ``dst`` and check its SHA-256 against the registry."""
    model = get_version(client, name, ref)
    if not model.sha256:
        raise ModelIntegrityError(f"{name} version {model.version} has no {lineage.SHA256} tag; it was not "
                                  "registered through AutoRetrain, refusing to load it unverified")
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model.uri, dst_path=str(dst)))
    actual = tree_sha256(local)
    if actual != model.sha256:
        raise ModelIntegrityError(f"{name} version {model.version}: artifact SHA-256 {actual[:16]}... does "
                                  f"not match the registered {model.sha256[:16]}...; the artifact was "
                                  "modified after registration, refusing to load it")
    return local, model


def quiet_skops_import() -> None:
    """Import ``skops.io`` (MLflow's sklearn format) with its start-up module scan kept out of the log.

    On import, skops looks up objects by reading an attribute of that name on every loaded module
    (like pickle's ``whichmodule``). In a process that has imported Airflow, that reads Airflow's
    deprecated-attribute shims: ~1,160 ``DeprecatedImportWarning`` lines in the task log before the
    task's own output (issue 15). The warnings are about skops's scan, not about any code of ours,
    so they are dropped for that import only; every other warning still shows.
    """
    if "skops.io" in sys.modules:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"skops\.")
        import skops.io  # noqa: F401


def load_verified(client: MlflowClient, name: str, ref: str = CHAMPION) -> tuple[Any, ModelRef]:
    """The fitted sklearn pipeline of version/alias ``ref``, after its SHA-256 check."""
    import mlflow.sklearn

    quiet_skops_import()

    with tempfile.TemporaryDirectory(prefix="autoretrain-model-") as tmp:
        local, model = download_verified(client, name, ref, tmp)
        return mlflow.sklearn.load_model(str(local)), model
