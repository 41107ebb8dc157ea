"""The training DAG end to end with dag.test(): real mlflow server (Postgres store), Airflow on Postgres."""

from __future__ import annotations

import pandas as pd
import pytest

from autoretrain import registry, tracking
from autoretrain.config import load_settings
from tests.conftest import ROOT, dag_from_bag, task_states

pytestmark = pytest.mark.integration

FAST = {"families": ["complement_nb", "linear_svm"], "cv_folds": 3}


@pytest.fixture
def env(mlflow_server, model_name, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("AUTORETRAIN_MODEL_NAME", model_name)
    settings = load_settings()
    return settings, tracking.client_for(settings)


def test_first_run_makes_a_verified_champion_the_second_goes_to_the_rollout(airflow_db, env):
    settings, client = env
    run = dag_from_bag("training").test(run_conf=FAST)
    assert run.state == "success", task_states(run)
    states = task_states(run)
    assert states["alias"] == "success" and states["gate_failed"] == "skipped"
    assert states["train[0]"] == states["train[1]"] == "success"

    model, ref = registry.load_trusted(settings, client, "champion")
    assert ref.version == "1" and ref.aliases == ("champion",)
    tags = ref.tags
    assert float(tags["holdout_accuracy"]) >= settings.accuracy_min
    assert float(tags["holdout_f1"]) >= settings.f1_min
    assert float(tags["holdout_ece"]) <= settings.ece_max
    assert tags["autoretrain.family"] in FAST["families"]
    assert tags["airflow.dag_id"] == "training" and tags["airflow.run_id"] == run.run_id
    proba = model.predict_proba(pd.DataFrame({"text": ["WINNER!! Claim your free prize, call 09061701461",
                                                       "are we still on for lunch tomorrow?"]}))
    spam = list(model.classes_).index("spam")
    assert proba[0, spam] > 0.9 and proba[1, spam] < 0.1

    parent = client.get_run(tags["autoretrain.parent_run_id"])
    assert parent.data.metrics["rows_train"] + parent.data.metrics["rows_test"] == parent.data.metrics[
        "rows_deduplicated"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert artifacts == {"plots/confusion_matrix.png", "plots/roc.png", "plots/pr.png", "plots/reliability.png"}
    assert {i.dataset.name for i in parent.inputs.dataset_inputs} == {f"{settings.model_name}-train",
                                                                       f"{settings.model_name}-test"}
    family_runs = client.search_runs([parent.info.experiment_id],
                                     filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(family_runs) == 2 and parent.info.status == "FINISHED"
    assert {r.info.status for r in family_runs} == {"FINISHED"}  # every run the DAG made has ended

    # with a champion, the version gets no alias here: it is handed to the one rollout path
    second = dag_from_bag("training").test(run_conf=FAST)
    assert second.state == "success"
    assert {k: v for k, v in task_states(second).items() if k in ("alias", "needs_rollout", "rollout")} == {
        "alias": "success", "needs_rollout": "success", "rollout": "success"}
    assert registry.alias_version(client, settings.model_name, "challenger") is None
    assert registry.get_version(client, settings.model_name, "2").aliases == ()
    assert registry.alias_version(client, settings.model_name, "champion").version == "1"
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        handed = session.query(DagRun).filter(DagRun.dag_id == "retrain_compare_promote",
                                              DagRun.run_id == f"rollout__{second.run_id}").one()
        assert handed.conf["version"] == "2" and handed.conf["reason"].startswith(f"weekly training {second.run_id}")

    broken = dag_from_bag("training").test(run_conf={**FAST, "data_uri": str(ROOT / "README.md")})
    assert broken.state == "failed" and task_states(broken)["load"] == "failed"
    assert registry.alias_version(client, settings.model_name, "champion").version == "1"  # untouched
    assert len(client.search_model_versions(f"name = '{settings.model_name}'")) == 2  # nothing new


def test_failed_gates_leave_no_alias(airflow_db, env):
    settings, client = env
    run = dag_from_bag("training").test(run_conf={**FAST, "f1_min": 0.999})
    states = task_states(run)
    assert states["gate_failed"] == "success" and states["alias"] == "skipped"
    ref = registry.get_version(client, settings.model_name, "1")
    assert ref.tags["autoretrain.gates"] == "failed" and ref.aliases == ()
    assert registry.alias_version(client, settings.model_name, "champion") is None


def test_broken_dataset_never_reaches_training(airflow_db, env, tmp_path, monkeypatch):
    settings, client = env
    monkeypatch.setenv("AUTORETRAIN_DATA_ALLOWED_ROOTS", f"data,{tmp_path}")  # read it, to find it broken
    bad = tmp_path / "broken.tsv"
    bad.write_text("ham\tfine message\nspam no tab here\n", encoding="utf-8")
    run = dag_from_bag("training").test(run_conf={**FAST, "data_uri": str(bad)})
    states = task_states(run)
    assert run.state == "failed"
    assert states["load"] == "failed"
    assert "success" not in {states.get(t) for t in ("train", "register", "alias")}
    assert client.search_registered_models(f"name = '{settings.model_name}'") == []
    # the run that snapshotted nothing usable ended FAILED, not "Running" forever
    (parent,) = client.search_runs([client.get_experiment_by_name(settings.experiment_name).experiment_id],
                                   filter_string=f"tags.`airflow.run_id` = '{run.run_id}'")
    assert parent.info.status == "FAILED"


def test_a_run_with_an_untouched_form_uses_the_workers_settings(airflow_db, env, monkeypatch):
    """The DAG is parsed where AUTORETRAIN_CV_FOLDS=4 (the DAG processor), the task runs where it is 3.

    A scheduled run (like this run without conf) takes the Params' defaults; they are None, so the
    worker's environment decides, not the settings the DAG processor saw when it parsed the file.
    """
    settings, client = env
    monkeypatch.setenv("AUTORETRAIN_CV_FOLDS", "4")
    dag = dag_from_bag("training")
    assert dag.params["cv_folds"] is None and dag.params["families"] is None
    monkeypatch.setenv("AUTORETRAIN_CV_FOLDS", "3")  # the worker's environment
    monkeypatch.setenv("AUTORETRAIN_FAMILIES", "complement_nb")
    run = dag.test()
    assert run.state == "success", task_states(run)
    ref = registry.get_version(client, settings.model_name, "1")
    parent = client.get_run(ref.tags["autoretrain.parent_run_id"])
    assert parent.data.params["settings.cv_folds"] == "3"
    assert parent.data.params["settings.families"] == "['complement_nb']"
    family_run = client.get_run(ref.run_id)
    assert family_run.data.params["cv_folds"] == "3" and family_run.data.params["family"] == "complement_nb"
