"""The only door to the MLflow model registry: versions, aliases, and artifact integrity.

Consumers load ``models:/<name>@champion``. At registration AutoRetrain vets a version (skops
format, only the types of :data:`PROJECT_TRUSTED`) and records the SHA-256 of its artifact tree in
its own database (``model_artifacts``, :mod:`autoretrain.audit.artifacts`, with an HMAC under
``Settings.integrity_key`` when one is set); the ``autoretrain.sha256`` tag in MLflow is only a copy
for people. Every load reads that record first, downloads into a temporary folder, recomputes the
digest and loads the skops file itself with the project's trusted types (never the ones the
artifact's ``MLmodel`` lists, never pickle). A version with no record, a digest or HMAC that does
not match, or a non-skops artifact is refused with :class:`ModelIntegrityError` (ADR 0007).

Every alias move goes through :func:`move_alias` (or :func:`assign_version` /
:func:`rollback_champion`), under the model's lock (:func:`autoretrain.audit.aliases.model_lock`),
written ahead: the planned changes are committed as a pending intent
(:mod:`autoretrain.audit.intents`), then the aliases moved in MLflow, then the append-only
``alias_audit`` rows inserted and the intent completed in one transaction. A crash in between is
finished by the next locked operation on the model (a retry, the reconciler). If MLflow refuses
or is unreachable, the aliases already moved are put back and :class:`AliasMoveError` (retryable)
says so; an undo that fails too says which alias is where and records ``undo_failed``. Promoting a
new ``champion`` records the replaced one as ``previous``; :func:`rollback_champion` restores it
in one step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sys
import tempfile
import uuid
import warnings
import zipfile
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import mlflow
import sqlalchemy as sa
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import Connection, Engine

from autoretrain import lineage
from autoretrain.audit import aliases as audit
from autoretrain.audit import artifacts, intents
from autoretrain.config import Settings
from autoretrain.errors import AutoRetrainError, TransientError
from autoretrain.promotion.payloads import AliasChange, AliasMoveRecord
from autoretrain.training.payloads import RegisteredVersion

log = logging.getLogger(__name__)

CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"
PREVIOUS: Final = "previous"

#: every type a pipeline of AutoRetrain's families holds (training.families: the classifiers, their
#: sigmoid calibration; training.features: the TF-IDF ColumnTransformer). The only types a model file
#: may contain: the list an artifact's own MLmodel gives is never read. A new family's classes go here
#: (tests/unit/test_registry.py fits every family and checks it loads with this list alone).
PROJECT_TRUSTED: Final = (
    "builtins.dict", "builtins.list", "builtins.slice", "builtins.str", "builtins.tuple",
    "numpy.float64", "numpy.ndarray",
    "sklearn.pipeline.Pipeline",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.naive_bayes.MultinomialNB",
    "sklearn.naive_bayes.ComplementNB",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._stochastic_gradient.SGDClassifier",
    "sklearn.linear_model._sgd_fast.ModifiedHuber",
    "sklearn.svm._classes.LinearSVC",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)
#: file suffixes of pickle-based formats: an artifact holding one is refused outright
PICKLE_SUFFIXES: Final = (".pkl", ".pickle", ".joblib", ".cloudpickle", ".dill", ".pt", ".pth", ".sav")
MLMODEL: Final = "MLmodel"


class RegistryError(AutoRetrainError, RuntimeError):
    """A registry lookup or update failed (unknown model, alias or version)."""


class AliasMoveError(TransientError, RuntimeError):
    """An alias move did not go through (MLflow or the audit table failed); the message says what stands."""


class ModelIntegrityError(AutoRetrainError, RuntimeError):
    """A model version AutoRetrain did not register and vet, or whose bytes changed since: never loaded."""


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


def list_versions(client: MlflowClient, name: str) -> list[ModelRef]:
    """Every version of ``name`` (oldest first) with its aliases; [] when the model does not exist."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
        held = client.get_registered_model(name).aliases if versions else {}
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return []
        raise
    by_version: dict[str, list[str]] = {}
    for alias, version in held.items():  # search results carry no aliases; the registered model has them
        by_version.setdefault(str(version), []).append(alias)
    return [dataclasses.replace(_ref(mv), aliases=tuple(sorted(by_version.get(str(mv.version), []))))
            for mv in sorted(versions, key=lambda v: int(v.version))]


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelRef | None:
    """The version holding ``alias``, or None when the alias (or the model) does not exist."""
    try:
        return _ref(client.get_model_version_by_alias(name, alias))
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def register_version(client: MlflowClient, *, name: str, model_uri: str, run_id: str, engine: Engine,
                     key: str = "", registered_by: str = "autoretrain", tags: dict[str, str] | None = None) -> ModelRef:
    """Register ``model_uri`` under ``name``, vet it and record its digest; reuse the version of ``run_id`` if any.

    Vetting: the downloaded tree is a skops model that loads with :data:`PROJECT_TRUSTED` alone.
    Only then is the ``model_artifacts`` record written (the authority of every later load).
    """
    existing = _version_of_run(client, name, run_id)
    if existing is not None and existing.sha256:
        done = artifacts.find(engine, name, existing.version)
        if done is not None:
            log.info("model %s version %s already registered for run %s", name, existing.version, run_id)
            return dataclasses.replace(existing, sha256=done.sha256)
    if existing is None:
        mv = mlflow.register_model(model_uri, name, tags=tags or {})
        version = str(mv.version)
    else:  # registered, but a previous attempt died before recording it
        version = existing.version
    sha = _vet_and_record(client, engine, name=name, version=version, run_id=run_id, key=key,
                          by=registered_by).sha256
    for tag, value in (tags or {}).items():
        client.set_model_version_tag(name, version, tag, str(value))
    log.info("registered %s version %s (sha256 %s..., recorded in model_artifacts) from %s", name, version,
             sha[:12], model_uri)
    return dataclasses.replace(get_version(client, name, version), sha256=sha)


def _vet_and_record(client: MlflowClient, engine: Engine, *, name: str, version: str, run_id: str, key: str,
                    by: str) -> artifacts.ArtifactRecord:
    """Download version ``version``, vet it (what a load would refuse) and record its digest."""
    with tempfile.TemporaryDirectory(prefix="autoretrain-register-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        sha = tree_sha256(local)
        load_model_dir(local, what=f"{name} version {version}")  # vetting: refuses what a load would refuse
    try:
        record = artifacts.record(engine, model_name=name, version=version, run_id=run_id, sha256=sha, key=key,
                                  registered_by=by)
    except ValueError as err:
        raise ModelIntegrityError(f"{name} version {version}: {err}; its artifact changed between two "
                                  "registration attempts, refusing it") from err
    client.set_model_version_tag(name, version, lineage.SHA256, sha)  # a copy for people; not the authority
    return record


def vet_version(client: MlflowClient, engine: Engine, *, name: str, version: str, key: str, vetted_by: str,
                ) -> artifacts.ArtifactRecord:
    """A person vouches for a version AutoRetrain has no record of (``autoretrain vet``), e.g. one
    registered before revision 0003: it is vetted exactly as at registration (skops, the project's
    types only) and recorded as ``vetted_by``. A version already recorded is left as it is."""
    done = artifacts.find(engine, name, version)
    if done is not None:
        log.info("%s version %s is already recorded (by %s)", name, version, done.registered_by)
        return done
    mv = client.get_model_version(name, version)
    record = _vet_and_record(client, engine, name=name, version=version, run_id=mv.run_id or "", key=key,
                             by=vetted_by)
    log.info("%s version %s vetted and recorded in model_artifacts (by %s)", name, version, vetted_by)
    return record


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
    """Point ``alias`` at ``version`` (None: remove it) and record who/what/why, under the model's lock.

    Written ahead: the planned changes are committed as a pending intent before MLflow is touched,
    and the audit rows with the intent's completion after MLflow accepted every change. A crash in
    between is finished by the next locked operation on the model (this function, a retry,
    :func:`autoretrain.audit.reconcile.reconcile`) from MLflow's actual aliases. ``previous``
    matters only for ``alias="champion"``: ``record`` makes the replaced champion the ``previous``
    alias, ``clear`` removes ``previous`` (a rollback), ``keep`` leaves it alone. A retry with the
    same ``run_id``, alias, action and version returns the recorded move without moving anything again.
    """
    if previous not in PREVIOUS_MODES:
        raise ValueError(f"previous={previous!r} is not one of {PREVIOUS_MODES}")
    with _locked(engine, name) as conn:
        finish_intents(client, conn, name)
        return _move(client, conn, name=name, alias=alias, version=version, actor=actor, reason=reason,
                     run_id=run_id, action=action, reasons=reasons, metrics=metrics, previous=previous, at=at)


@dataclass(frozen=True)
class Assignment:
    """The outcome of :func:`assign_version`: the alias chosen under the lock, why, and the move (None: none)."""

    alias: str | None
    reason: str
    move: AliasMove | None


def assign_version(client: MlflowClient, engine: Engine, *, name: str, version: str, actor: str, run_id: str,
                   metrics: Mapping[str, Any] | None = None, at: datetime | None = None,
                   otherwise: str | None = CHALLENGER) -> Assignment:
    """``champion`` when the model has none (or it is ``version``), else ``otherwise``: decided under the lock.

    The "is there a champion yet?" read and the move happen under the same lock, so two first
    trainings finishing at once give one champion and one challenger (that the comparison decides).
    ``otherwise=None`` moves nothing when a champion exists (``alias`` is then None): the version
    waits for its rollout run, which sets ``challenger`` itself when it starts (one rollout at a time).
    """
    with _locked(engine, name) as conn:
        finish_intents(client, conn, name)
        champion = alias_version(client, name, CHAMPION)
        if champion is None or champion.version == version:
            alias, reason = CHAMPION, "no champion yet and the gates pass"
        elif otherwise is None:
            return Assignment(alias=None, reason=f"champion is version {champion.version}; the version waits for "
                                                 "retrain_compare_promote (compare, canary, approval)", move=None)
        else:
            alias, reason = otherwise, f"champion is version {champion.version}; retrain_compare_promote decides"
        move = _move(client, conn, name=name, alias=alias, version=version, actor=actor, reason=reason,
                     run_id=run_id, action="assign", reasons=(), metrics=metrics, previous="keep", at=at)
    return Assignment(alias=alias, reason=reason, move=move)


def rollback_champion(client: MlflowClient, engine: Engine, *, name: str, actor: str, reason: str, run_id: str,
                      to_version: str | None = None, metrics: Mapping[str, Any] | None = None) -> AliasMove:
    """Put ``champion`` back on the ``previous`` version (or ``to_version``) and clear ``previous``."""
    with _locked(engine, name) as conn:
        finish_intents(client, conn, name)
        target = to_version
        if target is None:
            previous = alias_version(client, name, PREVIOUS)
            done = audit.recorded(engine, model_name=name, run_id=run_id, alias=CHAMPION, action="rollback")
            if previous is None and done:  # a retry of a rollback that happened: replay it
                return _as_move(done, replayed=True)
            if previous is None:
                raise RegistryError(f"model {name!r} has no {PREVIOUS!r} alias: no earlier champion is recorded "
                                    "to roll back to; name a version explicitly")
            target = previous.version
        return _move(client, conn, name=name, alias=CHAMPION, version=target, actor=actor, reason=reason,
                     run_id=run_id, action="rollback", reasons=[reason], metrics=metrics, previous="clear", at=None)


@contextmanager
def _locked(engine: Engine, name: str) -> Generator[Connection, None, None]:
    """:func:`autoretrain.audit.aliases.model_lock`, with a database failure as a retryable AliasMoveError."""
    try:
        with audit.model_lock(engine, name) as conn:
            yield conn
    except sa.exc.SQLAlchemyError as err:
        raise AliasMoveError(f"the alias audit database failed during an alias move of {name!r} "
                             f"({type(err).__name__}: {_short(err)}); nothing unrecorded stays behind: a move "
                             "that reached MLflow stays a pending intent that a retry or `autoretrain audit "
                             "reconcile` completes") from err


def _move(client: MlflowClient, conn: Connection, *, name: str, alias: str, version: str | None, actor: str,
          reason: str, run_id: str, action: str, reasons: Sequence[str], metrics: Mapping[str, Any] | None,
          previous: str, at: datetime | None) -> AliasMove:
    """One move under the lock: replay it if recorded, else plan, write the intent, apply, complete."""
    key = audit.idempotency_key(run_id=run_id, model_name=name, alias=alias, action=action, to_version=version)
    recorded = audit.find(conn, key)
    if recorded:
        log.info("alias move %s already recorded (move %s); nothing to do", key, recorded[0].move_id)
        return _as_move(recorded, replayed=True)
    try:
        changes = _plan(client, name, alias, version, previous)
    except (ValueError, RegistryError):
        raise
    except Exception as err:  # noqa: BLE001 - MLflow away (any client error): nothing has happened yet
        raise AliasMoveError(f"moving {name}@{alias} to version {version} failed before anything moved; nothing "
                             f"was recorded, retry when MLflow answers: {type(err).__name__}: {_short(err)}") from err
    intent = intents.begin(conn, move_id=str(uuid.uuid4()), created_at=at or datetime.now(UTC), model_name=name,
                           action=action, actor=actor, run_id=run_id, reason=reason, reasons=reasons,
                           metrics=dict(metrics or {}), idempotency_key=key, changes=changes)
    _apply_intent(client, conn, intent, what=f"{name}@{alias} to version {version}")
    for change in changes:
        log.info("alias %s@%s: version %s -> %s (%s by %s: %s)", name, change["alias"], change["from_version"],
                 change["to_version"], action, actor, reason)
    return AliasMove(move_id=intent.move_id, name=name, changes=tuple(changes))


def _apply_intent(client: MlflowClient, conn: Connection, intent: intents.Intent, *, what: str) -> None:
    """MLflow first, then the audit rows and the intent's completion in one transaction."""
    done: list[AliasChange] = []
    for change in intent.changes:
        try:
            _apply(client, intent.model_name, change["alias"], change["to_version"])
        except Exception as err:  # noqa: BLE001 - any MLflow failure: undo, then say exactly what is left
            raise _failed(client, conn, intent, done, change, err, what=what) from err
        done.append(change)
    try:
        intents.complete(conn, intent)
    except sa.exc.SQLAlchemyError as err:
        raise AliasMoveError(f"MLflow made the move {what} ({_changes(intent.changes)}), but the alias audit could "
                             f"not be written ({type(err).__name__}: {_short(err)}); intent {intent.move_id} stays "
                             "pending: a retry or `autoretrain audit reconcile` completes it") from err


def _failed(client: MlflowClient, conn: Connection, intent: intents.Intent, done: Sequence[AliasChange],
            failed: AliasChange, err: Exception, *, what: str) -> AliasMoveError:
    """Undo what moved; end the intent ``undone`` or ``undo_failed`` (with audit rows for what stands)."""
    name, cause = intent.model_name, f"{type(err).__name__}: {_short(err)}"
    left = _undo(client, name, done)
    if not left:
        _end(conn, intent, status=intents.UNDONE, detail=cause)
        return AliasMoveError(f"moving {what} failed and was undone (every alias is back where it was); nothing was "
                              f"recorded, retry when MLflow and the database answer: {cause}")
    states = [f"{c['alias']} is on {c['to_version'] or 'nothing'} (moved from {c['from_version'] or 'nothing'}, "
              f"could not be put back)" for c in left]
    states += [f"{c['alias']} is on {c['from_version'] or 'nothing'} (put back)" for c in done if c not in left]
    states.append(f"{failed['alias']} is on {failed['from_version'] or 'nothing'} (not moved: {cause})")
    detail = f"moving {what} failed and could NOT be undone: " + "; ".join(states)
    _end(conn, intent, status=intents.UNDO_FAILED, detail=detail,
         rows=intent.audit_rows(left, action=intents.UNDO_FAILED,
                                reason=f"{intent.action} failed and this alias could not be put back: {cause}"))
    return AliasMoveError(f"{detail}. Recorded as {intents.UNDO_FAILED!r} in the alias audit; check with `autoretrain "
                          "models`, then retry (it plans again from where the aliases are) or fix them with "
                          "`autoretrain rollback`")


def _end(conn: Connection, intent: intents.Intent, *, status: str, detail: str,
         rows: Sequence[dict[str, Any]] = ()) -> None:
    """End a failed move's intent; a database that fails here too leaves it pending (the reconciler ends it)."""
    try:
        intents.finish(conn, intent, status=status, rows=rows, detail=detail)
    except sa.exc.SQLAlchemyError as db_err:
        log.error("alias intent %s could not be marked %s (%s); it stays pending and the next move or `autoretrain "
                  "audit reconcile` settles it from MLflow's aliases", intent.move_id, status, _short(db_err))


def finish_intents(client: MlflowClient, conn: Connection, name: str) -> list[AliasMove]:
    """Settle the pending intents of ``name`` (moves that crashed) from MLflow's actual aliases; under the lock.

    For each, oldest first: every alias already at its target -> completed (recorded); at its
    starting version -> the rest of the move is applied, then completed (the move was decided and
    committed; finishing it is what a retry would do); an alias on a third version (moved by
    someone else meanwhile) -> ``abandoned``, recording only the changes that did happen (the
    reconciler then records the rest as ``external``).
    """
    finished = []
    for intent in intents.pending(conn, name):
        try:
            finished.append(_settle(client, conn, intent))
        except sa.exc.SQLAlchemyError:
            raise
        except Exception as err:  # noqa: BLE001 - MLflow away: the intent stays pending for the next try
            raise AliasMoveError(f"the pending alias move {intent.move_id} of {name} ({_changes(intent.changes)}) "
                                 f"could not be finished: {type(err).__name__}: {_short(err)}; it stays pending, "
                                 "retry when MLflow answers") from err
    return finished


def _settle(client: MlflowClient, conn: Connection, intent: intents.Intent) -> AliasMove:
    name = intent.model_name
    states: dict[str, str | None] = {}
    for change in intent.changes:
        current = alias_version(client, name, change["alias"])
        states[change["alias"]] = current.version if current else None
    elsewhere = [c for c in intent.changes if states[c["alias"]] not in (c["from_version"], c["to_version"])]
    if elsewhere:
        happened = [c for c in intent.changes if states[c["alias"]] == c["to_version"] != c["from_version"]]
        detail = "; ".join(f"{c['alias']} is on {states[c['alias']] or 'nothing'}, neither {c['from_version']} nor "
                           f"{c['to_version']}" for c in elsewhere)
        intents.finish(conn, intent, status=intents.ABANDONED, rows=intent.audit_rows(happened), detail=detail)
        log.error("pending alias move %s of %s abandoned: %s (moved outside AutoRetrain meanwhile?)",
                  intent.move_id, name, detail)
        return AliasMove(move_id=intent.move_id, name=name, changes=tuple(happened), replayed=True)
    missing = [c for c in intent.changes if states[c["alias"]] != c["to_version"]]
    for change in missing:
        _apply(client, name, change["alias"], change["to_version"])
    intents.complete(conn, intent)
    log.warning("finished the pending alias move %s of %s (%s, %s by %s): %s", intent.move_id, name, intent.action,
                intent.reason, intent.actor, f"applied {_changes(missing)}" if missing else "MLflow had made it")
    return AliasMove(move_id=intent.move_id, name=name, changes=intent.changes, replayed=True)


def _changes(changes: Sequence[AliasChange]) -> str:
    return ", ".join(f"{c['alias']} {c['from_version'] or '-'} -> {c['to_version'] or '-'}" for c in changes)


def _short(err: BaseException) -> str:
    return " ".join(str(err).split())[:300]


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
    if version is not None:
        client.set_registered_model_alias(name, alias, version)
        return
    try:
        client.delete_registered_model_alias(name, alias)
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):  # already gone is what we want
            raise


def _undo(client: MlflowClient, name: str, done: Sequence[AliasChange]) -> list[AliasChange]:
    """Put the aliases already moved back where they were (newest first); the changes that could not be."""
    left: list[AliasChange] = []
    for change in reversed(done):
        try:
            _apply(client, name, change["alias"], change["from_version"])
            log.warning("undid %s@%s -> %s (back to %s)", name, change["alias"], change["to_version"],
                        change["from_version"])
        except Exception as err:  # noqa: BLE001 - keep undoing the rest; say loudly what is left
            left.append(change)
            log.error("could not undo %s@%s -> %s (it should be %s again): %s", name, change["alias"],
                      change["to_version"], change["from_version"], err)
    return list(reversed(left))


def _as_move(records: Sequence[audit.AuditRecord], *, replayed: bool) -> AliasMove:
    changes = tuple(AliasChange(alias=r.alias, from_version=r.from_version, to_version=r.to_version) for r in records)
    return AliasMove(move_id=records[0].move_id, name=records[0].model_name, changes=changes, replayed=replayed)


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


def check_model_dir(local: str | Path, *, what: str) -> Path:
    """The skops file of the MLflow model in ``local``; ModelIntegrityError for any other flavor or a pickle file.

    ``MLmodel`` is read with ``yaml.safe_load`` (data only); nothing else in the folder is opened.
    """
    import yaml

    root = Path(local)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() in PICKLE_SUFFIXES or _looks_pickled(path):
            raise ModelIntegrityError(f"{what}: {path.relative_to(root)} is a pickle file; AutoRetrain loads skops "
                                      "models only, refusing it")
    try:
        spec = yaml.safe_load((root / MLMODEL).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ModelIntegrityError(f"{what}: no readable {MLMODEL} file ({err}); refusing it") from err
    flavor = (spec.get("flavors") or {}).get("sklearn") if isinstance(spec, dict) else None
    if not isinstance(flavor, dict) or flavor.get("serialization_format") != artifacts.SKOPS:
        found = flavor.get("serialization_format") if isinstance(flavor, dict) else "no sklearn flavor"
        raise ModelIntegrityError(f"{what}: serialization format {found!r}, not skops; AutoRetrain loads skops "
                                  "models only, refusing it")
    if flavor.get("code"):
        raise ModelIntegrityError(f"{what}: the model ships code ({flavor['code']!r}); refusing it")
    model_file = root / str(flavor.get("pickled_model", ""))
    if model_file.suffix != ".skops" or not model_file.is_file() or root not in model_file.resolve().parents:
        raise ModelIntegrityError(f"{what}: model file {flavor.get('pickled_model')!r} is not a .skops file in "
                                  "the artifact; refusing it")
    return model_file


def _looks_pickled(path: Path) -> bool:
    """A pickle stream of protocol 2-5 starts with PROTO (0x80) and the protocol number."""
    with path.open("rb") as fh:
        head = fh.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def skops_types(model_file: Path) -> set[str]:
    """Every ``module.class`` named anywhere in the skops file's schema (read as JSON, nothing constructed)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "__class__" in node:
                found.add(f"{node.get('__module__')}.{node['__class__']}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    with zipfile.ZipFile(model_file) as archive:
        walk(json.loads(archive.read("schema.json")))
    return found


def load_model_dir(local: str | Path, *, what: str) -> Any:
    """The fitted pipeline of the skops model in ``local``, holding only types of :data:`PROJECT_TRUSTED`."""
    model_file = check_model_dir(local, what=what)
    quiet_skops_import()
    import skops.io

    try:
        extra = sorted(skops_types(model_file) - set(PROJECT_TRUSTED))
        if extra:
            raise ModelIntegrityError(f"{what}: the model holds types outside AutoRetrain's trusted list "
                                      f"(registry.PROJECT_TRUSTED): {', '.join(extra[:5])}; refusing it")
        return skops.io.load(model_file, trusted=list(PROJECT_TRUSTED))
    except ModelIntegrityError:
        raise
    except Exception as err:  # noqa: BLE001 - a malformed or hostile file: one clear refusal, never a crash
        raise ModelIntegrityError(f"{what}: {model_file.name} does not load as a trusted skops model "
                                  f"({type(err).__name__}: {err}); refusing it") from err


def verified_record(engine: Engine, name: str, version: str, *, key: str) -> artifacts.ArtifactRecord:
    """The ``model_artifacts`` record of a version, checked under ``key``; ModelIntegrityError without one."""
    record = artifacts.find(engine, name, version)
    if record is None:
        raise ModelIntegrityError(f"{name} version {version} was not registered by AutoRetrain (no model_artifacts "
                                  "record); refusing to load it (to vouch for it: `autoretrain vet "
                                  f"{version} --by NAME`)")
    if not artifacts.signature_ok(record, key):
        raise ModelIntegrityError(f"{name} version {version}: its model_artifacts record does not verify under "
                                  "integrity_key (HMAC missing or wrong); refusing to load it")
    return record


def verify_tree(local: str | Path, record: artifacts.ArtifactRecord) -> None:
    """ModelIntegrityError unless the tree in ``local`` has the digest AutoRetrain recorded."""
    actual = tree_sha256(local)
    if actual != record.sha256:
        raise ModelIntegrityError(f"{record.model_name} version {record.version}: artifact SHA-256 {actual[:16]}... "
                                  f"does not match the registered {record.sha256[:16]}...; the artifact was "
                                  "modified after registration, refusing to load it")


def download_verified(client: MlflowClient, name: str, ref: str, dst: str | Path, *, engine: Engine,
                      key: str = "") -> tuple[Path, ModelRef]:
    """Download version/alias ``ref`` into ``dst`` and check it against AutoRetrain's record of it.

    The record is read before anything is downloaded; nothing in ``dst`` has been deserialized.
    The returned ref carries the recorded digest (not the MLflow tag).
    """
    model = get_version(client, name, ref)
    record = verified_record(engine, name, model.version, key=key)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model.uri, dst_path=str(dst)))
    verify_tree(local, record)
    check_model_dir(local, what=f"{name} version {model.version}")
    return local, dataclasses.replace(model, sha256=record.sha256)


Keep = Callable[[Path, ModelRef], None]  # a verified folder, before its temporary copy is removed


def load_verified(client: MlflowClient, name: str, ref: str = CHAMPION, *, engine: Engine, key: str = "",
                  keep: Keep | None = None) -> tuple[Any, ModelRef]:
    """The fitted sklearn pipeline of version/alias ``ref``, after its record, digest and format checks.

    ``keep`` is called with the verified folder after a successful load (the serving's last-known-good copy).
    """
    with tempfile.TemporaryDirectory(prefix="autoretrain-model-") as tmp:
        local, model = download_verified(client, name, ref, tmp, engine=engine, key=key)
        pipeline = load_model_dir(local, what=f"{name} version {model.version}")
        if keep is not None:
            keep(local, model)
        return pipeline, model


def load_trusted(settings: Settings, client: MlflowClient, ref: str = CHAMPION, *,
                 name: str | None = None) -> tuple[Any, ModelRef]:
    """:func:`load_verified` against the database of ``settings`` (Airflow workers, the CLI)."""
    with audit.engine_for(settings) as engine:
        return load_verified(client, name or settings.model_name, ref, engine=engine, key=settings.integrity_key)


def load_run_model(model_uri: str, *, what: str) -> Any:
    """A model a training run just logged (``runs:/``, ``models:/m-...``; not registered yet), loaded as safely."""
    with tempfile.TemporaryDirectory(prefix="autoretrain-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        return load_model_dir(local, what=what)
