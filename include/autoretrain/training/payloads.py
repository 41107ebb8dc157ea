"""What the training steps return and pass to each other through XCom (types only).

A leaf: ``TypedDict`` s and aliases, no pandas, no mlflow, so the operators of
:mod:`autoretrain.airflow.training` can name them at DAG parse time. At run time every payload is a
plain ``dict``, which is what XCom serializes. The chain (:mod:`autoretrain.training.steps`)::

    load_data -> LoadedData -> validate_data -> ValidatedData
    train_family -> FamilyResult (one per family) -> select_model -> SelectedModel
    evaluate_model -> HoldoutMetrics -> register_model -> RegisteredVersion
    gate_model -> GateVerdict -> assign_alias -> AliasAssignment
    run_training (all of them in one process) -> TrainingResult

No ``from __future__ import annotations`` here: ``TypedDict`` reads ``NotRequired`` from evaluated
annotations (with string annotations Python 3.11 counts every key in ``__required_keys__``).
"""

from typing import Literal, NotRequired, TypedDict

from autoretrain.data.payloads import CheckRecord, DedupSummary, FeedbackSummary

#: the alias a freshly trained version can get (``retrain_compare_promote`` moves the others)
TrainingAlias = Literal["champion", "challenger"]

#: every metric of :func:`autoretrain.training.evaluation.compute_metrics` by name (the keys are read
#: by name from settings such as ``target_metric``, so a plain mapping rather than a TypedDict)
HoldoutMetrics = dict[str, float]


class LoadedData(TypedDict):
    """``load_data``: the parent run holding the snapshot, and the data's identity."""

    parent_run_id: str
    source: str  # the data URI, credentials redacted
    digest: str  # of everything loaded (base + feedback)
    rows: int  # of the base dataset
    # only when the run loaded the prediction log's labelled traffic too (``feedback_until``)
    base_digest: NotRequired[str]
    feedback_rows: NotRequired[int]
    feedback_digest: NotRequired[str]


class ValidatedData(TypedDict):
    """``validate_data``: the split that passed the checks."""

    train_rows: int
    test_rows: int
    train_digest: str
    test_digest: str
    dedup: DedupSummary
    checks: list[CheckRecord]
    feedback: NotRequired[FeedbackSummary]  # only when the run loaded labelled traffic


class FamilyResult(TypedDict):
    """``train_family``: one family's child run, its logged model and cross-validated metrics."""

    family: str
    run_id: str
    model_uri: str
    cv_metrics: dict[str, float]
    params: dict[str, str]  # MLflow params of the run


class SelectedModel(FamilyResult):
    """``select_model``: the winning family's result, with the ranking and why it won."""

    reasons: list[str]
    ranking: list[dict[str, str | float]]  # {"name": family, <target metric>: x, <tie-break metric>: y}


class RegisteredVersion(TypedDict):
    """``register_model``: :meth:`autoretrain.registry.ModelRef.as_dict` of the registered version."""

    name: str
    version: str
    run_id: str | None
    source: str | None  # the model's artifact URI
    sha256: str | None
    aliases: list[str]


class GateVerdict(TypedDict):
    """``gate_model``: :meth:`autoretrain.training.evaluation.GateDecision.as_dict`."""

    passed: bool
    reasons: list[str]


class AliasAssignment(TypedDict):
    """``assign_alias``: the alias given (None: none, with the reason)."""

    alias: TrainingAlias | None
    version: str
    reason: str
    rollout: bool  # True: a champion exists, the version goes to retrain_compare_promote (no alias here)


class FamilyScores(TypedDict):
    """One family's cross-validated metrics in :class:`TrainingResult`."""

    family: str
    cv_metrics: dict[str, float]


class TrainingResult(TypedDict):
    """``run_training``: every step's result of one in-process run (``autoretrain train`` prints it)."""

    parent_run_id: str
    data: LoadedData
    validation: ValidatedData
    families: list[FamilyScores]
    selected: str  # the winning family
    holdout: HoldoutMetrics
    registered: RegisteredVersion
    gate: GateVerdict
    alias: AliasAssignment
    seconds: float
