"""Payload drift: what the steps build at run time has exactly the keys (and value types) of its TypedDict.

The payloads cross XCom, the ``drift_windows`` table and MLflow as plain dicts, so nothing at run
time notices a key that was renamed in a builder but not in its type (or the other way round);
these tests do. The steps that need MLflow are checked end to end in
``tests/integration/test_payloads.py``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from autoretrain.airflow.alerting import Delivery, DeliveryRecord
from autoretrain.data import payloads as data
from autoretrain.data.challenger import FeedbackReport
from autoretrain.data.dataset_validation import DatasetValidation
from autoretrain.data.prepare import DedupReport
from autoretrain.data.snapshots import Snapshot
from autoretrain.data.validation import CheckResult, ValidationReport
from autoretrain.monitoring import payloads as monitoring
from autoretrain.monitoring.decision import decide_retrain
from autoretrain.monitoring.drift import DriftResult, Sample, run_checks
from autoretrain.monitoring.reference import build_reference
from autoretrain.monitoring.windows import drift_windows
from autoretrain.promotion import payloads as promotion
from autoretrain.promotion.canary import CanaryCheck, CanaryPolicy, check_canary
from autoretrain.promotion.decision import Policy, Scores, decide_promotion
from autoretrain.registry import AliasMove, ModelRef
from autoretrain.training import payloads as training
from autoretrain.training.evaluation import check_gates, compute_metrics
from tests.payloads import shape_errors

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
CHECK = CheckResult("duplicates", 0.3, 0.2, False, "30 % repeats", True)
REPORT = ValidationReport("sms.tsv", (CheckResult("schema", 1.0, 1.0, True), CHECK))
LABELS = np.array(["spam", "ham"] * 50)
GOOD = np.where(LABELS == "spam", 0.97, 0.02)
WORSE = np.where(np.arange(100) % 10 == 0, 0.6, GOOD)  # 5 ham messages flagged


def _dataset_summary() -> Any:
    return DatasetValidation(source="sms.tsv", now=NOW, dataset=REPORT, feedback=REPORT).summary()


def _drift_report() -> Any:
    """A judged window (text, prediction and feedback checks) of made-up messages and scores."""
    rng = np.random.default_rng(3)
    words = ["call", "free", "prize", "lunch", "tomorrow", "meeting", "win", "now", "see", "you"]
    texts = [" ".join(rng.choice(words, 6)) for _ in range(400)]
    proba = rng.uniform(0, 1, 400)
    labels = ["spam" if p > 0.5 else "ham" for p in proba]
    reference = build_reference(texts[:300], proba=proba[:300], labels=labels[:300])
    return run_checks(reference, Sample(texts[300:], proba[300:]), labels=labels[300:360] + [None] * 40).as_dict()


def _canary() -> Any:
    rows = [{"request_id": f"r{i}", "user_id": f"u{i}", "variant": "challenger" if i % 2 else "champion",
             "model_version": "2" if i % 2 else "1", "probability": 0.9, "label": "spam", "feedback_label": None}
            for i in range(10)]
    return check_canary(rows, challenger_version="2", champion_version="1", champion_labels={"r1": "spam"},
                        policy=CanaryPolicy(), window_complete=False).as_dict()


BUILT = {  # what the builders return, against its declared type
    "CheckResult.as_dict": (CHECK.as_dict, data.CheckRecord),
    "ValidationReport.as_dict": (REPORT.as_dict, data.ValidationReportRecord),
    "DedupReport.as_dict": (DedupReport(10, 8, 1, 1).as_dict, data.DedupSummary),
    "FeedbackReport.as_dict": (FeedbackReport(10, 2, 1, 1, 5, 1).as_dict, data.FeedbackSummary),
    "DatasetValidation.summary": (_dataset_summary, data.DatasetSummary),
    "Snapshot.as_dict": (Snapshot("ab" * 32, 2, {"ham": 1, "spam": 1}, "sms.tsv", NOW.isoformat(), "s3://b/x",
                                  True).as_dict, data.SnapshotRecord),
    "compute_metrics": (lambda: compute_metrics(LABELS, GOOD, positive_label="spam"), training.HoldoutMetrics),
    "GateDecision.as_dict": (lambda: check_gates({"accuracy": 0.99, "f1": 0.95, "ece": 0.01}, accuracy_min=0.95,
                                                 f1_min=0.9, ece_max=0.05).as_dict(), training.GateVerdict),
    "ModelRef.as_dict": (ModelRef("sms-spam", "3", "run-1", "s3://m/3", "ab" * 32, ("champion",), {}).as_dict,
                         training.RegisteredVersion),
    "AliasMove.as_dict": (AliasMove("m-1", "sms-spam", ({"alias": "champion", "from_version": "1",
                                                         "to_version": "2"},)).as_dict, promotion.AliasMoveRecord),
    "Decision.as_dict (first model)": (lambda: decide_promotion(None, Scores("1", LABELS, GOOD), Policy()).as_dict(),
                                       promotion.DecisionRecord),
    "Decision.as_dict (compared)": (lambda: decide_promotion(Scores("1", LABELS, WORSE), Scores("2", LABELS, GOOD),
                                                             Policy()).as_dict(), promotion.DecisionRecord),
    "CanaryVerdict.as_dict": (_canary, promotion.CanaryVerdictRecord),
    "DriftReport.as_dict": (_drift_report, monitoring.DriftReportRecord),
    "DriftReport.as_dict (insufficient)": (lambda: run_checks(Sample(["a message"] * 60), ["a message"] * 3).as_dict(),
                                           monitoring.DriftReportRecord),
    "DriftResult.as_dict": (DriftResult("prediction_psi", 0.3, 0.2, True, {"bins": np.int64(10)}).as_dict,
                            monitoring.DriftResultRecord),
    "decide_retrain": (lambda: decide_retrain([None, {"insufficient_data": False, "results": []}]).as_dict(),
                       monitoring.RetrainDecision),
    "Delivery.as_dict": (Delivery("sent", "slack_api", "#ops", "drift:x", None, 7).as_dict, DeliveryRecord),
}


@pytest.mark.parametrize("name", sorted(BUILT))
def test_built_payloads_have_exactly_their_declared_shape(name: str) -> None:
    build, declared = BUILT[name]
    payload = build()
    assert shape_errors(payload, declared) == []
    assert json.loads(json.dumps(payload)) == payload  # JSON-able, as XCom and MLflow need


MIRRORS = [  # a record TypedDict and the dataclass it is the dict of: the same names
    (CheckResult, data.CheckRecord), (DedupReport, data.DedupSummary), (FeedbackReport, data.FeedbackSummary),
    (Snapshot, data.SnapshotRecord), (CanaryCheck, promotion.CanaryCheckRecord), (Delivery, DeliveryRecord),
]


@pytest.mark.parametrize(("cls", "record"), MIRRORS, ids=lambda x: x.__name__)
def test_records_name_every_field_of_their_dataclass(cls: type, record: Any) -> None:
    assert [f.name for f in dataclasses.fields(cls)] == list(record.__annotations__)


def test_a_window_row_has_every_column_of_its_table() -> None:
    assert monitoring.WindowRow.__required_keys__ == set(drift_windows.c.keys())


def test_optional_keys_are_optional_at_run_time() -> None:
    """The payload modules keep their annotations evaluated: with strings, Python 3.11 makes every key required."""
    assert training.LoadedData.__optional_keys__ == {"base_digest", "feedback_rows", "feedback_digest"}
    assert training.ValidatedData.__optional_keys__ == {"feedback"}
    assert promotion.OriginScores.__optional_keys__ == {"challenger", "champion"}
    assert monitoring.RetrainDecision.__optional_keys__ == {"streak"}


def test_payload_modules_import_nothing_heavy() -> None:
    """The operators import them at DAG parse time: no numpy, pandas, mlflow, sklearn."""
    code = ("import sys\n"
            "import autoretrain.data.payloads, autoretrain.training.payloads\n"
            "import autoretrain.promotion.payloads, autoretrain.monitoring.payloads\n"
            "print(sorted(m for m in ('numpy', 'pandas', 'mlflow', 'sklearn', 'scipy', 'sqlalchemy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(("payload", "error"), [
    ({"passed": True}, "payload: GateVerdict lacks ['reasons']"),
    ({"passed": True, "reasons": [], "why": "x"}, "payload: GateVerdict does not declare ['why']"),
    ({"passed": "yes", "reasons": []}, "payload.passed: 'yes' (str) is not a bool"),
    ({"passed": True, "reasons": [1]}, "payload.reasons[0]: 1 (int) is not a str"),
])
def test_shape_errors_finds_drift(payload: dict[str, Any], error: str) -> None:
    assert shape_errors(payload, training.GateVerdict) == [error]


def test_shape_errors_follows_nested_and_optional_keys() -> None:
    loaded = {"parent_run_id": "r", "source": "s", "digest": "d", "rows": 3}
    assert shape_errors(loaded, training.LoadedData) == []
    assert shape_errors({**loaded, "feedback_rows": "3"}, training.LoadedData) == [
        "payload.feedback_rows: '3' (str) is not a int"]
    alias = {"alias": "previous", "version": "2", "reason": "r", "rollout": False}
    assert shape_errors(alias, training.AliasAssignment) == [
        "payload.alias: 'previous' is not one of ['champion', 'challenger']"]
