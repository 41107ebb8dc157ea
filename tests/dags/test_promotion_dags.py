"""retrain_compare_promote and rollback: schedule, task graph, Params form, branch wiring."""

from __future__ import annotations

import pytest
from airflow.sdk import TriggerRule

from autoretrain.airflow.assets import LABELLED_FEEDBACK
from tests.conftest import ROOT

RETRAIN_GRAPH = {
    "trigger": {"load"},
    "load": {"validate", "train", "select", "evaluate", "register", "compare"},
    "validate": {"families"},
    "families": {"train"},
    "train": {"select"},
    "select": {"evaluate", "register"},
    "evaluate": {"register"},
    "register": {"compare"},
    "compare": {"reject", "dry_run", "no_canary", "start_canary"},
    "start_canary": {"canary"},
    "canary": {"canary_verdict"},
    "canary_verdict": {"promote", "withdraw"},
    "no_canary": {"promote"},
    "promote": set(),
    "reject": set(),
    "dry_run": set(),
    "withdraw": set(),
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert {"retrain_compare_promote", "rollback"} <= set(bag.dag_ids), bag.import_errors
    return bag


def test_retrain_graph(dagbag) -> None:
    dag = dagbag.dags["retrain_compare_promote"]
    assert {t.task_id: set(t.downstream_task_ids) for t in dag.tasks} == RETRAIN_GRAPH


def test_retrain_schedule_and_limits(dagbag) -> None:
    dag = dagbag.dags["retrain_compare_promote"]
    assert dag.max_active_runs == 1
    assert dag.timetable.asset_condition == LABELLED_FEEDBACK
    assert "promotion" in dag.tags


def test_compare_branches_only_to_its_direct_downstreams(dagbag) -> None:
    """A branch skips every direct downstream it does not choose: each choice must be one of them."""
    dag = dagbag.dags["retrain_compare_promote"]
    compare = dag.get_task("compare")
    assert compare.branch_task_ids == compare.downstream_task_ids == {"dry_run", "reject", "no_canary", "start_canary"}
    verdict = dag.get_task("canary_verdict")
    assert {verdict.passed_task_id, verdict.failed_task_id} == verdict.downstream_task_ids


def test_promote_joins_both_paths(dagbag) -> None:
    promote = dagbag.dags["retrain_compare_promote"].get_task("promote")
    assert promote.upstream_task_ids == {"no_canary", "canary_verdict"}
    assert promote.trigger_rule == TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS


def test_canary_sensor_reschedules(dagbag) -> None:
    sensor = dagbag.dags["retrain_compare_promote"].get_task("canary")
    assert sensor.mode == "reschedule" and sensor.poke_interval == 60 and sensor.timeout == 24 * 3600


def test_retrain_params_form(dagbag) -> None:
    params = dagbag.dags["retrain_compare_promote"].params
    assert list(params.keys()) == ["reason", "families", "cv_folds", "force", "dry_run", "canary_minutes",
                                   "canary_percent", "drift_reasons", "monitoring_run_id"]
    assert params["force"] is False and params["dry_run"] is False
    schema = params.get_param("canary_minutes").schema
    assert schema["type"] == ["null", "integer"] and schema["minimum"] == 0 and schema["title"] == "Canary minutes"
    assert params["canary_minutes"] is None and params["canary_percent"] is None  # the worker's settings apply
    assert params.get_param("drift_reasons").schema["type"] == ["null", "object", "array"]


def test_rollback_dag(dagbag) -> None:
    dag = dagbag.dags["rollback"]
    assert [t.task_id for t in dag.tasks] == ["rollback"]
    assert dag.max_active_runs == 1 and type(dag.timetable).__name__ == "NullTimetable"
    assert list(dag.params.keys()) == ["reason", "to_version"]
    assert dag.params["to_version"] is None
    assert dag.params.get_param("to_version").schema["pattern"] == "^[0-9]+$"


def test_the_monitoring_trigger_sends_only_declared_params(dagbag) -> None:
    """The drift path's conf must fit the retrain form (the reasons land in Params the tasks read)."""
    if "monitoring" not in dagbag.dags:
        pytest.skip("the monitoring DAG is not in this tree")
    triggers = [t for t in dagbag.dags["monitoring"].tasks
                if getattr(t, "trigger_dag_id", None) == "retrain_compare_promote"]
    assert len(triggers) == 1
    assert set(triggers[0].conf) <= set(dagbag.dags["retrain_compare_promote"].params.keys())
    assert {"reason", "drift_reasons"} <= set(triggers[0].conf)
