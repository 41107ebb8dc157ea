"""retrain_compare_promote and rollback: schedule, task graph, Params form, branch wiring."""

from __future__ import annotations

import pytest
from airflow.sdk import TriggerRule

from autoretrain.airflow.assets import LABELLED_FEEDBACK
from tests.conftest import ROOT

RETRAIN_GRAPH = {
    "trigger": {"source"},
    "source": {"load", "handed_over"},  # train a challenger, or take the version handed over (Param version)
    "load": {"validate", "train", "select", "evaluate", "register"},
    "validate": {"families"},
    "families": {"train"},
    "train": {"select"},
    "select": {"evaluate", "register"},
    "evaluate": {"register"},
    "register": {"candidate"},
    "handed_over": {"candidate"},
    "candidate": {"compare"},
    "compare": {"reject", "dry_run", "no_canary", "start_canary"},
    "start_canary": {"canary"},
    "canary": {"canary_verdict"},
    "canary_verdict": {"approval", "withdraw"},
    "no_canary": {"approval"},
    "approval": {"promote", "not_approved"},
    "promote": set(),
    "not_approved": set(),
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


def test_the_approval_gate_joins_both_paths_and_branches_to_its_downstreams(dagbag) -> None:
    """After no_canary or a passed canary; a HITL task that branches to promote or not_approved."""
    from airflow.providers.standard.operators.hitl import HITLOperator

    dag = dagbag.dags["retrain_compare_promote"]
    approval = dag.get_task("approval")
    assert isinstance(approval, HITLOperator)
    assert approval.upstream_task_ids == {"no_canary", "canary_verdict"}
    assert approval.trigger_rule == TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
    assert {approval.promote_task_id, approval.refused_task_id} == approval.downstream_task_ids
    assert approval.options == ["Approve", "Reject"] and approval.defaults == ["Reject"]  # a timeout never approves
    assert list(approval.params.keys()) == ["comment"]  # the form holds the comment only, not the DAG's Params
    assert dag.get_task("promote").upstream_task_ids == {"approval"}
    assert dag.get_task("not_approved").approval_task_id == "approval"


def test_the_candidate_joins_training_and_the_hand_over(dagbag) -> None:
    dag = dagbag.dags["retrain_compare_promote"]
    source = dag.get_task("source")
    assert {source.train_task_id, source.handed_over_task_id} == source.downstream_task_ids
    candidate = dag.get_task("candidate")
    assert candidate.upstream_task_ids == {"register", "handed_over"}
    assert candidate.trigger_rule == TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS


def test_training_hands_its_version_to_the_rollout(dagbag) -> None:
    """The weekly training triggers retrain_compare_promote with only Params that DAG declares."""
    rollout = dagbag.dags["training"].get_task("rollout")
    assert rollout.trigger_dag_id == "retrain_compare_promote"
    assert set(rollout.conf) == {"version", "reason"}
    assert set(rollout.conf) <= set(dagbag.dags["retrain_compare_promote"].params.keys())
    assert rollout.skip_when_already_exists is True and rollout.wait_for_completion is False


def test_canary_sensor_reschedules(dagbag) -> None:
    sensor = dagbag.dags["retrain_compare_promote"].get_task("canary")
    assert sensor.mode == "reschedule" and sensor.poke_interval == 60 and sensor.timeout == 24 * 3600


def test_retrain_params_form(dagbag) -> None:
    params = dagbag.dags["retrain_compare_promote"].params
    assert list(params.keys()) == ["reason", "families", "cv_folds", "force", "dry_run", "canary_minutes",
                                   "canary_percent", "promotion_mode", "approval_timeout_hours", "version",
                                   "drift_reasons", "monitoring_run_id"]
    assert params["promotion_mode"] is None and params["version"] is None  # the worker's mode; train a challenger
    assert params.get_param("version").schema["pattern"] == "^[0-9]+$"
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
