"""MLflow's artifact store on S3 (a moto S3 server on loopback, real HTTP), both ways MLflow does it.

* Proxied, as the compose setup runs it: ``mlflow server --artifacts-destination s3://<bucket>/mlflow``
  (Postgres backend store). Only the server has the S3 endpoint and keys; this process has none,
  so every artifact byte goes through the server. A model trained and registered by
  :func:`autoretrain.training.steps.run_training` is objects in the bucket (MLmodel, model.skops,
  requirements.txt, ...), byte for byte what ``load_verified`` hashes; it loads and predicts; a
  ``model.skops`` with one byte flipped in S3 is refused naming the version, and ``champion``
  stays. The run's training data (``data/train.parquet``) is in the bucket with the digest the run
  recorded.
* Direct: an experiment whose artifact location is ``s3://<bucket>/direct`` (what
  ``--default-artifact-root s3://... --no-serve-artifacts`` gives every experiment): the client
  writes and reads S3 itself through boto3 (``MLFLOW_S3_ENDPOINT_URL``). Same integrity contract.
"""

from __future__ import annotations

import io
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from autoretrain import lineage, registry, tracking
from autoretrain.audit import aliases as audit
from autoretrain.config import Settings, load_settings
from autoretrain.data.sources import frame_digest
from autoretrain.training.steps import RunKey, run_training
from tests.conftest import ROOT, SESSION_TMP, free_port, serving_process

pytestmark = pytest.mark.integration

KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
#: anything that would let this process reach S3 without going through the mlflow server
CLIENT_S3_ENV = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
#: what ``mlflow.sklearn.log_model`` writes for a model of run_training (skops, pinned pip requirements)
MODEL_FILES = {"MLmodel", "model.skops", "requirements.txt", "conda.yaml", "python_env.yaml",
               "input_example.json", "serving_input_example.json"}
#: the first rows of the SMS corpus (848 ham, 152 spam): enough for the data checks and the gates
TRAINING_ROWS = 1000
MESSAGES = pd.DataFrame({"text": ["WINNER!! Claim your free prize now, call 09061701461 to claim",
                                  "ok see you at lunch, I'll bring the notes"]})


@dataclass
class Bucket:
    """A fresh bucket on the moto server and a boto3 client with its own endpoint and keys."""

    name: str
    client: Any
    endpoint: str

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def model_objects(self, prefix: str, model_uri: str) -> dict[str, str]:
        """file name -> S3 key of logged model ``models:/m-...``, below ``prefix``."""
        marker = f"/models/{model_uri.removeprefix('models:/')}/artifacts/"
        return {k.split(marker, 1)[1]: k for k in self.keys(prefix) if marker in k}


@pytest.fixture(scope="module")
def bucket(moto_server) -> Bucket:
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server.endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    name = f"autoretrain-mlflow-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    return Bucket(name=name, client=client, endpoint=moto_server.endpoint)


@pytest.fixture(scope="module")
def s3_mlflow(postgres_db: Callable[[str], str], bucket: Bucket) -> Iterator[str]:
    """``mlflow server --artifacts-destination s3://<bucket>/mlflow``; S3 endpoint and keys in its env only."""
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", postgres_db("mlflow_s3"),
           "--artifacts-destination", f"s3://{bucket.name}/mlflow", "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]
    env = {"MLFLOW_S3_ENDPOINT_URL": bucket.endpoint, **KEYS}  # as docker-compose.yaml's mlflow service
    with serving_process(cmd, f"http://127.0.0.1:{port}/health", SESSION_TMP / "mlflow-s3.log", env=env):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def no_client_s3(monkeypatch) -> None:
    """This process gets no S3 endpoint or keys: MLflow can only go through the server."""
    for key in CLIENT_S3_ENV:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="module")
def trained(s3_mlflow, tmp_path_factory) -> Iterator[tuple[Settings, dict[str, Any]]]:
    """One run of the real training path on the proxied server (first rows of the corpus, one family)."""
    data = tmp_path_factory.mktemp("s3-artifacts") / "sms.tsv"
    with (ROOT / "data/sms_spam_collection/SMSSpamCollection").open("rb") as fh:
        data.write_bytes(b"".join(fh.readline() for _ in range(TRAINING_ROWS)))
    settings = load_settings().with_overrides({
        "model_name": f"sms-spam-s3-{uuid.uuid4().hex[:8]}", "tracking_uri": s3_mlflow, "data_uri": str(data),
        "data_allowed_roots": ("data", str(data.parent)),  # the source policy admits the test's folder
        "experiment_name": "s3-artifacts-proxied", "families": ("complement_nb",), "cv_folds": 2})
    with pytest.MonkeyPatch.context() as mp:
        for key in CLIENT_S3_ENV:
            mp.delenv(key, raising=False)
        yield settings, run_training(settings, RunKey("test_s3_artifacts", uuid.uuid4().hex[:12]))


def downloaded(client: Any, name: str, version: str) -> dict[str, bytes]:
    """file name -> bytes of ``models:/<name>/<version>`` as the registry downloads it."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp))
        files = {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*") if p.is_file()}
        assert registry.tree_sha256(local) == client.get_model_version(name, version).tags[lineage.SHA256]
    return files


def tamper_and_expect_refusal(client: Any, bucket: Bucket, key: str, *, name: str, version: str, engine: Any,
                              refs: tuple[str, ...] = ()) -> None:
    """Flip one byte of the S3 object ``key`` (same size): ``load_verified`` refuses ``version`` and ``refs``.

    Then the original bytes go back, and the version loads again.
    """
    original = bucket.get(key)
    middle = len(original) // 2
    changed = original[:middle] + bytes([original[middle] ^ 0x01]) + original[middle + 1:]
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=changed)
    for ref in (version, *refs):
        with pytest.raises(registry.ModelIntegrityError, match=rf"^{name} version {version}: artifact SHA-256 "
                                                               r"\w+\.\.\. does not match the registered"):
            registry.load_verified(client, name, ref, engine=engine)
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=original)
    with tempfile.TemporaryDirectory() as tmp:
        assert registry.download_verified(client, name, version, tmp, engine=engine)[1].version == version


# ------------------------------------------------------------------------------------- proxied
def test_proxied_model_and_training_data_are_objects_in_the_bucket(trained, bucket, no_client_s3):
    settings, result = trained
    registered, client = result["registered"], tracking.client_for(settings)
    assert (registered["version"], result["alias"]["alias"]) == ("1", registry.CHAMPION)
    assert client.get_run(result["parent_run_id"]).info.artifact_uri.startswith("mlflow-artifacts:/")
    objects = bucket.model_objects("mlflow/", registered["source"])
    assert set(objects) == MODEL_FILES

    # what the registry hashed (and load_verified re-hashes) is exactly these objects, plus the
    # name/version file MLflow adds to every models:/ download
    files = downloaded(client, settings.model_name, "1")
    assert set(files) == MODEL_FILES | {"registered_model_meta"}
    assert all(files[rel] == bucket.get(key) for rel, key in objects.items())

    run_data = f"/{result['parent_run_id']}/artifacts/data/"
    train = [k for k in bucket.keys("mlflow/") if k.endswith(f"{run_data}train.parquet")]
    assert len(train) == 1, train
    assert frame_digest(pd.read_parquet(io.BytesIO(bucket.get(train[0])))) == result["validation"]["train_digest"]


def test_proxied_load_is_verified_and_a_tampered_object_is_refused(trained, bucket, no_client_s3):
    settings, result = trained
    client, name = tracking.client_for(settings), settings.model_name
    model, ref = registry.load_trusted(settings, client, registry.CHAMPION)
    assert (ref.version, ref.sha256) == ("1", result["registered"]["sha256"])
    assert list(model.predict(MESSAGES)) == ["spam", "ham"]

    skops = bucket.model_objects("mlflow/", ref.source)["model.skops"]
    with audit.engine_for(settings) as engine:
        tamper_and_expect_refusal(client, bucket, skops, name=name, version="1", engine=engine,
                                  refs=(registry.CHAMPION,))
    assert registry.alias_version(client, name, registry.CHAMPION).version == "1"
    assert registry.alias_version(client, name, registry.PREVIOUS) is None


# -------------------------------------------------------------------------------------- direct
def test_direct_s3_artifacts_written_by_the_client_are_verified(s3_mlflow, bucket, model_name, monkeypatch):
    import mlflow
    import mlflow.sklearn
    from sklearn.naive_bayes import ComplementNB

    from autoretrain.training.families import build_pipeline
    from autoretrain.training.steps import SKOPS_TRUSTED_TYPES, pinned_requirements

    for key, value in {"MLFLOW_S3_ENDPOINT_URL": bucket.endpoint, **KEYS}.items():
        monkeypatch.setenv(key, value)
    settings = load_settings().with_overrides({"model_name": model_name, "tracking_uri": s3_mlflow})
    client = tracking.client_for(settings)
    experiment = client.create_experiment(f"s3-artifacts-direct-{model_name}",
                                          artifact_location=f"s3://{bucket.name}/direct")
    texts = ["win a free prize now", "call to claim your cash award", "see you at lunch", "ok thanks, talk later"]
    pipe = build_pipeline(ComplementNB()).fit(pd.DataFrame({"text": texts * 10}), ["spam", "spam", "ham", "ham"] * 10)
    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.sklearn.log_model(pipe, name="model", pip_requirements=pinned_requirements(),
                                        skops_trusted_types=list(SKOPS_TRUSTED_TYPES))
    assert run.info.artifact_uri == f"s3://{bucket.name}/direct/{run.info.run_id}/artifacts"
    with audit.engine_for(settings) as engine:
        ref = registry.register_version(client, name=model_name, model_uri=info.model_uri, run_id=run.info.run_id,
                                        engine=engine)

        objects = bucket.model_objects("direct/", info.model_uri)
        assert set(objects) == MODEL_FILES - {"input_example.json", "serving_input_example.json"}
        model, loaded = registry.load_verified(client, model_name, "1", engine=engine)
        assert (loaded.version, loaded.sha256) == ("1", ref.sha256)
        assert list(model.predict(pd.DataFrame({"text": ["free prize", "lunch later"]}))) == ["spam", "ham"]
        tamper_and_expect_refusal(client, bucket, objects["model.skops"], name=model_name, version="1",
                                  engine=engine)
