"""Every DAG imports cleanly, follows the house rules, and touches nothing heavy or remote at parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoretrain.airflow.callbacks import on_task_failure
from tests.conftest import ROOT

DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
HEAVY = ("mlflow", "sklearn", "pandas", "numpy", "scipy", "evidently", "boto3", "matplotlib")

EXPECTED_GRAPHS = {
    "dataset_validation": {"validate": {"snapshot", "stale_data_alert"}, "snapshot": set(),
                           "stale_data_alert": set()},
    "feedback_trigger": {"count_labels": set()},
    "maintenance": {"purge_rows": set(), "purge_artifacts": set()},
    "monitoring": {
        "measure": {"decide"}, "decide": {"drift_detected", "awaiting_confirmation", "no_action", "regression_alert"},
        "drift_detected": {"drift_alert", "trigger_retrain"}, "awaiting_confirmation": set(),
        "drift_alert": set(), "trigger_retrain": {"record_retrain"}, "record_retrain": set(), "no_action": set(),
        "regression_alert": set(), "reconcile_aliases": set(),
    },
    "training": {
        "load": {"validate", "train", "select", "evaluate", "register"},
        "validate": {"families"},
        "families": {"train"},
        "train": {"select"},
        "select": {"evaluate", "register"},
        "evaluate": {"register", "gate"},
        "register": {"gate", "alias", "gate_failed"},
        "gate": {"alias", "gate_failed"},
        "alias": {"needs_rollout"},
        "needs_rollout": {"rollout"},  # a champion exists: the version goes to retrain_compare_promote
        "rollout": set(),
        "gate_failed": set(),
    },
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {p.stem for p in DAG_FILES} <= set(dagbag.dag_ids)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_dag_follows_house_rules(dagbag, path: Path):
    dag = dagbag.dags[path.stem]  # dag_id == file name
    assert dag.tags and "autoretrain" in dag.tags
    assert dag.catchup is False
    assert dag.doc_md and dag.doc_md.strip()
    assert dag.start_date is not None
    for task in dag.tasks:
        assert task.owner == "autoretrain", task.task_id
        assert task.retries >= 1, task.task_id
        callbacks = task.on_failure_callback
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        assert on_task_failure in callbacks, f"{task.task_id} lacks the failure callback"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_GRAPHS))
def test_task_graph(dagbag, dag_id: str):
    dag = dagbag.dags[dag_id]
    graph = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    assert graph == EXPECTED_GRAPHS[dag_id]


def test_training_params_form(dagbag):
    params = dagbag.dags["training"].params
    assert set(params.keys()) == {"families", "cv_folds", "data_uri", "accuracy_min", "f1_min", "ece_max",
                                  "promote"}
    assert params.get_param("cv_folds").schema["type"] == ["null", "integer"]
    assert params.get_param("families").schema["items"]["enum"] == [
        "multinomial_nb", "complement_nb", "logreg", "linear_svm", "sgd"]
    assert "worker's setting `cv_folds` (built-in default: 5)" in params.get_param("cv_folds").description


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_GRAPHS))
def test_params_that_override_settings_default_to_none(dagbag, dag_id):
    """An untouched form must not carry the DAG processor's settings into the run (the worker's apply)."""
    from autoretrain.config import Settings

    params = dagbag.dags[dag_id].params
    setting_params = set(params.keys()) & set(Settings.__dataclass_fields__)
    assert all(params[name] is None for name in setting_params), {n: params[n] for n in setting_params}


PARSE_PROBE = r"""
import json, sys
import airflow.sdk  # the SDK itself is the allowed parse-time cost
from airflow.sdk import Variable, Connection
from airflow.sdk.bases.hook import BaseHook

def refuse(*a, **k):
    raise RuntimeError("connection or Variable accessed at parse time")

Variable.get = staticmethod(refuse)
Connection.get = classmethod(refuse)
BaseHook.get_connection = classmethod(refuse)
import importlib.util
out = {}
for path in sys.argv[1:]:
    before = set(sys.modules)
    spec = importlib.util.spec_from_file_location("dag_" + path.rsplit("/", 1)[-1][:-3], path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    out[path] = {"new_heavy": sorted({m.split(".")[0] for m in set(sys.modules) - before} & set(HEAVY))}
print(json.dumps(out))
"""


def _parse_probe(files: list[Path], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path), "AUTORETRAIN_HOME": str(ROOT),
           "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://nobody@127.0.0.1:1/unreachable",
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    code = f"HEAVY = {HEAVY!r}\n" + PARSE_PROBE
    return subprocess.run([sys.executable, "-c", code, *map(str, files)], env=env, capture_output=True,
                          text=True, timeout=120)


def test_parse_is_light_and_offline(tmp_path):
    """Parse each DAG in a fresh interpreter with an unreachable metadata DB and no Variables."""
    result = _parse_probe(DAG_FILES, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for path, info in report.items():
        assert info["new_heavy"] == [], f"{path} imports {info['new_heavy']} at parse time"


def test_parse_probe_catches_offenders(tmp_path):
    """The probe itself can fail: a heavy import and a Variable read are both caught."""
    heavy = tmp_path / "heavy.py"
    heavy.write_text("import pandas\n")
    report = json.loads(_parse_probe([heavy], tmp_path).stdout.strip().splitlines()[-1])
    assert report[str(heavy)]["new_heavy"] == ["numpy", "pandas"]
    remote = tmp_path / "remote.py"
    remote.write_text("from airflow.sdk import Variable\nVariable.get('x')\n")
    result = _parse_probe([remote], tmp_path)
    assert result.returncode != 0 and "accessed at parse time" in result.stderr


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_GRAPHS))
def test_params_name_only_settings_a_run_may_set(dagbag, dag_id):
    """A Param that names a setting must be one of RUN_SETTINGS, or every run of the DAG would be refused."""
    import dataclasses

    from autoretrain.config import RUN_SETTINGS, Settings

    names = {f.name for f in dataclasses.fields(Settings)}
    assert {p for p in dagbag.dags[dag_id].params if p in names} <= RUN_SETTINGS


@pytest.fixture(scope="module")
def deadline_dagbag():
    """The DAGs parsed with the built-in ``run_deadlines`` (the session turns them off for dag.test())."""
    from airflow.dag_processing.dagbag import DagBag

    from autoretrain.config import Settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTORETRAIN_RUN_DEADLINES", ",".join(Settings().run_deadlines))
        return DagBag(str(ROOT / "dags"))


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_every_dag_has_its_deadline_alert(deadline_dagbag, dagbag, path: Path):
    from datetime import timedelta

    from airflow.sdk import DeadlineReference

    from autoretrain.config import Settings

    (deadline,) = deadline_dagbag.dags[path.stem].deadline
    assert deadline.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert deadline.interval == timedelta(seconds=Settings().deadlines()[path.stem])
    assert deadline.callback.path == "autoretrain.airflow.deadlines.deadline_missed"
    assert deadline.callback.kwargs["limit"].endswith(" after it was queued")
    assert dagbag.dags[path.stem].deadline is None  # this session's setting: none (see tests/conftest.py)


def test_in_approve_mode_the_retrain_deadline_covers_the_wait_for_a_person(monkeypatch):
    from datetime import timedelta

    from autoretrain.airflow.deadlines import run_deadline

    monkeypatch.setenv("AUTORETRAIN_RUN_DEADLINES", "retrain_compare_promote=2h,training=2h")
    monkeypatch.setenv("AUTORETRAIN_PROMOTION_MODE", "approve")
    monkeypatch.setenv("AUTORETRAIN_APPROVAL_TIMEOUT_HOURS", "24")
    assert run_deadline("retrain_compare_promote").interval == timedelta(hours=26)
    assert run_deadline("training").interval == timedelta(hours=2)
