"""Model integrity without MLflow: the project's trusted types, the format checks, the record and its HMAC.

The attacks through a real ``mlflow server`` are in tests/integration/test_model_integrity.py.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import mlflow.sklearn
import pytest
import sqlalchemy as sa
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from autoretrain import registry
from autoretrain.audit import artifacts
from autoretrain.data.sources import read_dataset
from autoretrain.db.engine import make_engine
from autoretrain.registry import PROJECT_TRUSTED, ModelIntegrityError, ModelRef
from autoretrain.serving.integrity import LastKnownGood
from autoretrain.training.families import FAMILIES, search_family
from autoretrain.training.steps import SKOPS_TRUSTED_TYPES
from tests.conftest import migrated

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def frame() -> Any:
    source = str(ROOT / "data/sms_spam_collection/SMSSpamCollection")
    return read_dataset(source, labels=("ham", "spam")).frame.head(400)


@pytest.fixture(scope="module")
def fitted(frame: Any) -> dict[str, Any]:
    """Every family's best pipeline, on a small sample (the types are what matters, not the scores)."""
    return {name: search_family(name, frame, positive_label="spam", cv_folds=2, seed=0, threshold=0.5).pipeline
            for name in FAMILIES}


def save(pipeline: Any, path: Path, *, skops_trusted_types: list[str] | None = None) -> Path:
    """As training logs it (MLflow's save checks the types against the list it writes into MLmodel)."""
    mlflow.sklearn.save_model(pipeline, str(path), serialization_format="skops",
                              skops_trusted_types=skops_trusted_types or list(SKOPS_TRUSTED_TYPES))
    return path


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    engine = make_engine(migrated(f"sqlite:///{tmp_path / 'autoretrain.db'}"))
    yield engine
    engine.dispose()


# --------------------------------------------------------------------------- the trusted types
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_loads_with_the_project_types_alone(fitted: dict[str, Any], frame: Any, tmp_path: Path,
                                                          family: str) -> None:
    local = save(fitted[family], tmp_path / family)
    model_file = registry.check_model_dir(local, what=family)
    assert registry.skops_types(model_file) <= set(PROJECT_TRUSTED)
    loaded = registry.load_model_dir(local, what=family)
    texts = frame[["text"]].head(20)
    assert (loaded.predict_proba(texts) == fitted[family].predict_proba(texts)).all()


def test_types_the_artifact_trusts_itself_are_refused(tmp_path: Path) -> None:
    """(b) An MLmodel that lists os.system as trusted: AutoRetrain never reads that list; nothing is constructed."""
    hostile = Pipeline([("run", FunctionTransformer(func=os.system))])
    local = save(hostile, tmp_path / "hostile", skops_trusted_types=["posix.system", "builtins.eval",
                 "sklearn.preprocessing._function_transformer.FunctionTransformer"])
    assert "posix.system" in (local / "MLmodel").read_text()
    with pytest.raises(ModelIntegrityError, match=r"types outside AutoRetrain's trusted list .*posix\.system"):
        registry.load_model_dir(local, what="m version 9")


# ------------------------------------------------------------------------------- format checks
def _tamper(local: Path, how: str) -> None:
    spec = (local / "MLmodel").read_text()
    if how == "pickle file":
        (local / "extra.pkl").write_bytes(pickle.dumps({"a": 1}))
    elif how == "pickle bytes under another name":
        (local / "notes.txt").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    elif how == "cloudpickle format":
        (local / "MLmodel").write_text(spec.replace("serialization_format: skops", "serialization_format: cloudpickle"))
    elif how == "model code":
        (local / "MLmodel").write_text(spec.replace("code: null", "code: code"))
    elif how == "model file outside":
        (local / "MLmodel").write_text(spec.replace("pickled_model: model.skops", "pickled_model: ../x.skops"))
    elif how == "no MLmodel":
        (local / "MLmodel").unlink()
    elif how == "not a zip":
        (local / "model.skops").write_bytes(b"garbage")


@pytest.mark.parametrize(("how", "message"), [
    ("pickle file", r"extra\.pkl is a pickle file"),
    ("pickle bytes under another name", r"notes\.txt is a pickle file"),
    ("cloudpickle format", r"serialization format 'cloudpickle', not skops"),
    ("model code", r"the model ships code"),
    ("model file outside", r"is not a \.skops file in the artifact"),
    ("no MLmodel", r"no readable MLmodel file"),
    ("not a zip", r"does not load as a trusted skops model"),
])
def test_anything_but_a_skops_model_is_refused(fitted: dict[str, Any], tmp_path: Path, how: str,
                                                message: str) -> None:
    local = save(fitted["complement_nb"], tmp_path / "m")
    _tamper(local, how)
    with pytest.raises(ModelIntegrityError, match=message) as refused:
        registry.load_model_dir(local, what="m version 3")
    assert refused.value.retryable is False
    assert str(refused.value).startswith("m version 3: ")


# ------------------------------------------------------------------------------ the record, HMAC
def test_hmac_binds_name_version_and_digest() -> None:
    base = {"model_name": "m", "version": "3", "sha256": "ab" * 32}
    mac = artifacts.sign("k", **base)
    assert len(mac) == 64 and artifacts.sign("", **base) == ""
    assert {artifacts.sign("k", **{**base, field: value}) for field, value in
            (("model_name", "n"), ("version", "4"), ("sha256", "cd" * 32))} & {mac} == set()
    assert artifacts.sign("k2", **base) != mac


def test_record_is_written_once_and_never_changes(engine: Any) -> None:
    first = artifacts.record(engine, model_name="m", version="1", run_id="r1", sha256="a" * 64, key="k",
                             registered_by="training/manual__1")
    again = artifacts.record(engine, model_name="m", version="1", run_id="r1", sha256="a" * 64, key="k",
                             registered_by="training/manual__2")
    assert again == first and artifacts.find(engine, "m", "1") == first
    with pytest.raises(ValueError, match="already recorded with SHA-256 aaaa"):
        artifacts.record(engine, model_name="m", version="1", run_id="r1", sha256="b" * 64, key="k",
                         registered_by="x")
    assert artifacts.find(engine, "m", "2") is None


@pytest.mark.parametrize(("written_with", "checked_with", "ok"), [
    ("k", "k", True), ("", "", True),
    ("k", "", True),  # no key configured: the row alone is the authority (ADR 0007)
    ("", "k", False),  # a row written without the key (or by someone without it) does not verify
    ("k", "other", False),
])
def test_verified_record_checks_the_hmac(engine: Any, written_with: str, checked_with: str, ok: bool) -> None:
    artifacts.record(engine, model_name="m", version="1", run_id="r", sha256="a" * 64, key=written_with,
                     registered_by="t")
    if ok:
        assert registry.verified_record(engine, "m", "1", key=checked_with).sha256 == "a" * 64
    else:
        with pytest.raises(ModelIntegrityError, match="does not verify under integrity_key"):
            registry.verified_record(engine, "m", "1", key=checked_with)


def test_a_forged_row_without_the_key_is_refused(engine: Any) -> None:
    """A writer of AutoRetrain's database who lacks integrity_key: the row is there, the HMAC is not right."""
    with engine.begin() as conn:
        conn.execute(sa.insert(artifacts.model_artifacts).values(
            model_name="m", version="7", run_id="r", sha256="c" * 64, hmac="0" * 64, format="skops",
            registered_at=sa.func.current_timestamp(), registered_by="attacker"))
    with pytest.raises(ModelIntegrityError, match="version 7: its model_artifacts record does not verify"):
        registry.verified_record(engine, "m", "7", key="the-real-key")
    with pytest.raises(ModelIntegrityError, match="version 8 was not registered by AutoRetrain"):
        registry.verified_record(engine, "m", "8", key="the-real-key")


# ----------------------------------------------------------------------------- last-known-good
def test_last_known_good_is_reverified_before_it_loads(fitted: dict[str, Any], engine: Any, tmp_path: Path) -> None:
    local = save(fitted["logreg"], tmp_path / "download")
    digest = registry.tree_sha256(local)
    artifacts.record(engine, model_name="m", version="4", run_id="r4", sha256=digest, key="k", registered_by="t")
    ref = ModelRef(name="m", version="4", run_id="r4", source="models:/m/4", sha256=digest, aliases=("champion",),
                   tags={"autoretrain.family": "logreg"})
    keeper = LastKnownGood(tmp_path / "lkg" / "m", engine=engine, model_name="m", key="k")
    assert keeper.load() is None  # nothing kept yet
    keeper.stash(local, ref)
    shutil.rmtree(local)  # the download was a temporary folder
    keeper.remember(ref)
    got_ref, pipeline = keeper.load() or (None, None)
    assert got_ref is not None and (got_ref.version, got_ref.sha256, got_ref.tags) == ("4", digest, ref.tags)
    assert list(pipeline.classes_) == ["ham", "spam"]
    (tmp_path / "lkg" / "m" / "4" / "model.skops").write_bytes(b"changed on disk")
    with pytest.raises(ModelIntegrityError, match="version 4: artifact SHA-256 .* does not match"):
        keeper.load()


def test_last_known_good_keeps_a_few_copies(fitted: dict[str, Any], engine: Any, tmp_path: Path) -> None:
    keeper = LastKnownGood(tmp_path / "lkg", engine=engine, model_name="m", key="")
    local = save(fitted["complement_nb"], tmp_path / "download")
    for version in ("1", "2", "3", "4", "5"):
        ref = ModelRef(name="m", version=version, run_id="r", source="s", sha256="x", aliases=(), tags={})
        keeper.stash(local, ref)
        keeper.remember(ref)
    assert sorted(p.name for p in (tmp_path / "lkg").iterdir() if p.is_dir()) == ["3", "4", "5"]
