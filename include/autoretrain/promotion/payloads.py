"""What the rollout steps return and pass to each other through XCom (types only).

A leaf: ``TypedDict`` s and aliases, no numpy, no mlflow, so the operators of
:mod:`autoretrain.airflow.promotion` can name them at DAG parse time. At run time every payload is a
plain ``dict``. The steps (:mod:`autoretrain.promotion.rollout`)::

    compare_challenger -> Comparison (XCom ``decision`` of ``compare``)
    start_canary -> CanaryStart -> canary_status -> CanaryVerdictRecord (+ the canary: CanaryOutcome)
    promote_challenger -> Promotion | withdraw_challenger -> Withdrawal | rollback -> Rollback

No ``from __future__ import annotations`` here: ``TypedDict`` reads ``NotRequired`` from evaluated
annotations (with string annotations Python 3.11 counts every key in ``__required_keys__``).
"""

from typing import Any, Literal, NotRequired, TypedDict

from autoretrain.training.payloads import RegisteredVersion

CanaryStatus = Literal["pass", "fail", "wait"]


class AliasChange(TypedDict):
    """One alias of a move: where it pointed before and after (None: it did not exist / was removed)."""

    alias: str
    from_version: str | None
    to_version: str | None


class AliasMoveRecord(TypedDict):
    """:meth:`autoretrain.registry.AliasMove.as_dict`: the recorded changes of one audited move."""

    move_id: str
    name: str
    changes: list[AliasChange]
    replayed: bool  # found recorded by an earlier try: nothing moved this time


# --------------------------------------------------------------------------------- comparison
class DecisionRecord(TypedDict):
    """:meth:`autoretrain.promotion.decision.Decision.as_dict`."""

    promote: bool
    reasons: list[str]
    # the statistics behind the reasons (policy, both models' metrics, tests); its keys depend on
    # the path the decision took (no champion: gates only), see decide_promotion
    numbers: dict[str, Any]


class OriginScores(TypedDict):
    """Both models' metrics on one part of the hold-out (None: undefined on this part)."""

    n: int
    challenger: NotRequired[dict[str, float | None]]
    champion: NotRequired[dict[str, float | None]]  # absent without a champion


class Comparison(DecisionRecord):
    """``compare_challenger``: the decision, which versions it was about, and the per-origin metrics."""

    name: str
    version: str
    champion_version: str | None
    by_origin: dict[str, OriginScores]  # "base" / "feedback" -> scores (empty without an origin column)


class Rejection(TypedDict):
    """The ``reject`` task: the challenger stays without an alias."""

    version: str
    champion_version: str | None
    reasons: list[str]


# ------------------------------------------------------------------------------------- canary
class CanaryRouting(TypedDict):
    """The routing override a canary starts (what the prediction service polls)."""

    mode: Literal["canary"]
    canary_percent: float


class CanaryStart(TypedDict):
    """``start_canary``: the canary's description (the canary sensor reads it)."""

    name: str
    version: str
    champion_version: str
    started_at: str  # ISO 8601
    canary_percent: int
    canary_minutes: int
    routing: CanaryRouting
    move: AliasMoveRecord


class Candidate(TypedDict):
    """The version a rollout compares: trained by this run, or handed over (``training``'s Param ``version``)."""

    parent_run_id: str  # the MLflow run holding its hold-out scores
    registered: RegisteredVersion
    handed_over: bool  # True: registered by another run (weekly training, ``autoretrain train``)


class CanaryCheckRecord(TypedDict):
    """:meth:`autoretrain.promotion.canary.CanaryCheck.as_dict`: one signal of the canary."""

    name: str
    score: float
    threshold: float
    passed: bool
    judged: bool
    details: str


class CanaryNumbers(TypedDict):
    """The counts behind a canary verdict."""

    served: int
    challenger: int
    champion: int
    meant_for_challenger: int
    fallbacks: int
    invalid_scores: int
    other_versions: int
    window_complete: bool


class CanaryVerdictRecord(TypedDict):
    """:meth:`autoretrain.promotion.canary.CanaryVerdict.as_dict`."""

    status: CanaryStatus
    reasons: list[str]
    checks: list[CanaryCheckRecord]
    numbers: CanaryNumbers


class CanaryReading(CanaryVerdictRecord):
    """``canary_status``: the verdict over the window read so far."""

    since: str  # ISO 8601
    until: str


class CanaryOutcome(CanaryReading):
    """The canary sensor's XCom: the final reading and the canary it judged."""

    canary: CanaryStart


# ----------------------------------------------------------------------------------- outcomes
class Promotion(TypedDict):
    """``promote_challenger``."""

    name: str
    version: str
    previous_version: str | None  # the champion it replaced (None: the first champion)
    move: AliasMoveRecord
    challenger_removed: bool
    routing: Literal["full", "unchanged"]  # "full": a canary routing ended


class Withdrawal(TypedDict):
    """``withdraw_challenger``: a failed canary rolled back, or a person said no (or nobody answered)."""

    name: str
    version: str
    champion_version: str | None
    move: AliasMoveRecord | None  # None: the challenger alias had already moved on
    routing: Literal["full", "unchanged"]  # "full": a canary routing ended


# ----------------------------------------------------------------------------------- approval
ApprovalOutcome = Literal["approved", "rejected", "timeout", "not_required"]


class ApprovalAnswer(TypedDict):
    """The approval gate's XCom: what the person (or the timeout) decided, and who."""

    outcome: ApprovalOutcome
    approved: bool
    by: str | None  # the reviewer's Airflow user name (None: timeout, or auto mode)
    by_id: str | None
    comment: str
    at: str | None  # ISO 8601: when the answer arrived
    requested_at: str | None  # ISO 8601: when the request was written
    version: str
    reasons: list[str]  # one line each, for the alias audit


class Rollback(TypedDict):
    """``rollback``: the champion put back on an earlier version."""

    name: str
    from_version: str | None
    to_version: str | None
    move: AliasMoveRecord
    replayed: bool


class TriggerReason(TypedDict):
    """Why a ``retrain_compare_promote`` run started."""

    source: Literal["feedback", "drift", "manual", "training"]
    reason: str
    drift: dict[str, Any] | list[Any] | None  # Param ``drift_reasons`` (the monitoring decision), else None


class AuditIds(TypedDict):
    """Who moves an alias and under which run: the ``run_id``/``actor`` keywords of every audited step."""

    run_id: str
    actor: str
