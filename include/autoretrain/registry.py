"""The only door to the MLflow model registry: versions, aliases, and artifact integrity.

Consumers load ``models:/<name>@champion``. Each registered version carries the SHA-256 of its
model artifact (tag ``autoretrain.sha256``); every load recomputes and compares it, and a
tampered artifact is refused with :class:`ModelIntegrityError`.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

SHA_TAG = "autoretrain.sha256"
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"


class RegistryError(RuntimeError):
    """A registry lookup or update failed (unknown model, alias or version)."""


class ModelIntegrityError(RuntimeError):
    """A model artifact's SHA-256 does not match the one recorded at registration."""


@dataclass(frozen=True)
class ModelRef:
    """A registered model version as AutoRetrain sees it."""

    name: str
    version: str
    run_id: str | None
    source: str
    sha256: str | None
    aliases: tuple[str, ...]
    tags: dict[str, str]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def as_dict(self) -> dict[str, Any]:
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
                    sha256=(mv.tags or {}).get(SHA_TAG), aliases=tuple(getattr(mv, "aliases", []) or []),
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
    client.set_model_version_tag(name, version, SHA_TAG, sha)
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
    """Point ``alias`` of ``name`` at ``version``."""
    client.set_registered_model_alias(name, alias, version)
    log.info("alias %s@%s -> version %s", name, alias, version)


def download_verified(client: MlflowClient, name: str, ref: str, dst: str | Path) -> tuple[Path, ModelRef]:
    """Download version/alias ``ref`` into ``dst`` and check its SHA-256 against the registry."""
    model = get_version(client, name, ref)
    if not model.sha256:
        raise ModelIntegrityError(f"{name} version {model.version} has no {SHA_TAG} tag; it was not "
                                  "registered through AutoRetrain, refusing to load it unverified")
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model.uri, dst_path=str(dst)))
    actual = tree_sha256(local)
    if actual != model.sha256:
        raise ModelIntegrityError(f"{name} version {model.version}: artifact SHA-256 {actual[:16]}... does "
                                  f"not match the registered {model.sha256[:16]}...; the artifact was "
                                  "modified after registration, refusing to load it")
    return local, model


def load_verified(client: MlflowClient, name: str, ref: str = CHAMPION) -> tuple[Any, ModelRef]:
    """The fitted sklearn pipeline of version/alias ``ref``, after its SHA-256 check."""
    import mlflow.sklearn

    with tempfile.TemporaryDirectory(prefix="autoretrain-model-") as tmp:
        local, model = download_verified(client, name, ref, tmp)
        return mlflow.sklearn.load_model(str(local)), model
