"""The dataset_validation DAG's shape: schedule, params, graph, asset, callbacks (no run)."""

from __future__ import annotations

import pytest

from autoretrain.airflow.assets import VALIDATED_DATASET
from autoretrain.airflow.callbacks import on_task_failure
from autoretrain.airflow.errors import DatasetRejected
from autoretrain.data.feedback import load_feedback, resolve_loader
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags" / "dataset_validation.py"))
    assert bag.import_errors == {}
    return bag.dags["dataset_validation"]


def test_schedule_and_house_rules(dag):
    assert dag.timetable.expression == "0 8 * * 1"  # Mondays 08:00 UTC
    assert str(dag.timetable.timezone) == "UTC" and dag.catchup is False and dag.max_active_runs == 1
    assert dag.tags == {"autoretrain", "data", "validation"}
    assert dag.doc_md.lstrip().startswith("### dataset_validation")


def test_graph_asset_and_callbacks(dag):
    assert {t.task_id: set(t.downstream_task_ids) for t in dag.tasks} == {
        "validate": {"snapshot", "stale_data_alert"}, "snapshot": set(), "stale_data_alert": set()}
    snapshot = dag.get_task("snapshot")
    assert snapshot.outlets == [VALIDATED_DATASET]
    assert VALIDATED_DATASET.uri == "x-autoretrain://datasets/validated"
    for task in dag.tasks:
        assert task.on_failure_callback == [on_task_failure]
    for task_id in ("validate", "snapshot"):
        assert dag.get_task(task_id).feedback_loader == "autoretrain.data.feedback:load_feedback"
    assert resolve_loader(dag.get_task("validate").feedback_loader) is load_feedback


def test_params_form(dag):
    params = dag.params
    assert set(params.keys()) == {"data_uri", "minimum_samples", "max_duplicate_share", "freshness_days"}
    assert params["minimum_samples"] is None  # the worker's setting applies
    minimum = params.get_param("minimum_samples")
    assert minimum.schema == {"type": ["null", "integer"], "minimum": 1, "title": "Minimum rows"}
    assert minimum.description == ("Fewer rows fail the dataset (blocking). "
                                   "Empty: the worker's setting `minimum_samples` (built-in default: 1000).")
    assert "feedback_uri" not in params  # a connection setting: the worker's configuration only (issue 12)


def test_dataset_rejected_carries_the_report_and_survives_pickling():
    import pickle

    err = DatasetRejected({"source": "x.tsv", "failures": [{"name": "duplicates", "details": "50% repeats"}]})
    assert str(err) == "dataset x.tsv failed validation: duplicates: 50% repeats"
    again = pickle.loads(pickle.dumps(err))
    assert again.summary == err.summary and str(again) == str(err)
