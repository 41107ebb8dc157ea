"""Operators and the sensor of ``retrain_compare_promote`` and ``rollback``: thin over ``promotion.rollout``.

``source`` branches to the training chain or to ``handed_over`` (Param ``version``: a version the
weekly training or ``autoretrain train`` registered); ``candidate`` is whichever of the two left a
version, and ``compare`` reads it. The approval gate after the comparison (and canary) is
:mod:`autoretrain.airflow.approval`; ``not_approved`` is a :class:`WithdrawOperator` with its answer.

``compare`` (a branch) decides and pushes the decision as XCom ``decision``; the tasks after it pull
it by task id (``decision_task_id``) rather than through an ``XComArg``, because an ``XComArg`` would
make them direct downstreams of the branch, which skips every direct downstream it did not choose.
Promotion, rejection and rollback each send their alert through
:func:`autoretrain.airflow.alerting.send_alert` (which never fails the task). What each task pushes
and pulls is typed in :mod:`autoretrain.promotion.payloads`; templated inputs are annotated, like the
training operators', with the payload Airflow renders into them before ``execute``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal

from airflow.sdk import BaseBranchOperator, BaseOperator, BaseSensorOperator, Context, PokeReturnValue, TriggerRule

from autoretrain.airflow.context import airflow_url, audit_ids, settings_for
from autoretrain.airflow.errors import maps_errors
from autoretrain.errors import AutoRetrainError
from autoretrain.promotion import payloads
from autoretrain.training.payloads import LoadedData, RegisteredVersion


class MissingUpstream(AutoRetrainError):
    """A task ran without the XCom of the upstream task it reads (the DAG is wired wrong)."""


def trigger_reason(context: Context) -> payloads.TriggerReason:
    """Why this run started: an Asset event, the monitoring DAG's drift path, or a person.

    The first task of the run, so a refused conf (:meth:`Settings.for_run`) fails here, before any work.
    """
    settings_for(context)
    params = dict(context.get("params") or {})
    events = context.get("triggering_asset_events") or {}
    found = [e for v in events.values() for e in v] if hasattr(events, "values") else []
    if found:
        labels = sum(int((getattr(e, "extra", None) or {}).get("new_labels") or 0) for e in found)
        counted = f"{labels} new labels, " if labels else ""
        return {"source": "feedback", "reason": f"feedback: {counted}{len(found)} labelled-feedback event(s)",
                "drift": None}
    drift = params.get("drift_reasons")
    source: Literal["drift", "manual", "training"] = (
        "drift" if drift else "training" if params.get("version") else "manual")
    return {"source": source, "reason": str(params.get("reason") or source), "drift": drift}


def _pull(context: Context, task_id: str, key: str = "return_value") -> Any:
    return context["ti"].xcom_pull(task_ids=task_id, key=key)


def _decision(context: Context, task_id: str) -> payloads.Comparison:
    decision: payloads.Comparison | None = _pull(context, task_id, "decision")
    if not decision:
        raise MissingUpstream(f"no comparison decision in XCom {task_id!r}/decision; did {task_id} run?")
    return decision.copy()


def _metrics(decision: payloads.Comparison) -> dict[str, Any]:
    """The numbers worth keeping with an alias move (small: the audit row is read by people)."""
    numbers = decision.get("numbers") or {}
    keep = {k: numbers.get(k) for k in ("n", "n_positive", "improvement", "mcnemar", "bootstrap", "checks", "forced")}
    for role in ("challenger", "champion"):
        if numbers.get(role):
            keep[role] = {k: numbers[role].get(k) for k in ("version", "accuracy", "f1", "ece", "fpr")}
    return keep


def _alert(kind: str, context: Context, **fields: Any) -> None:
    from autoretrain.airflow.alerting import send_alert
    from autoretrain.alerts.messages import build_alert, mlflow_model_url

    settings = settings_for(context)
    version = fields.get("version") or fields.get("to_version")
    url = mlflow_model_url(settings.resolved_tracking_uri(), settings.model_name, version) if version else None
    alert = build_alert(kind, model_name=settings.model_name, run_id=str(context["run_id"]),
                        airflow_url=airflow_url(context), mlflow_url=url, **fields)
    send_alert(alert, settings, context=context)


# ------------------------------------------------------------------------------------- operators
class SourceBranchOperator(BaseBranchOperator):
    """``handed_over`` when the run names a registered ``version`` (Param), else the training chain's first task."""

    def __init__(self, *, train_task_id: str, handed_over_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.train_task_id, self.handed_over_task_id = train_task_id, handed_over_task_id

    def choose_branch(self, context: Context) -> str:
        version = (context.get("params") or {}).get("version")
        return self.handed_over_task_id if version else self.train_task_id


class HandedOverOperator(BaseOperator):
    """The candidate is a version registered elsewhere (weekly training, ``autoretrain train``): no training."""

    ui_color = "#e9f7ef"

    @maps_errors
    def execute(self, context: Context) -> payloads.Candidate:
        from autoretrain.promotion.rollout import handed_over

        return handed_over(settings_for(context), version=str((context.get("params") or {}).get("version")))


class CandidateOperator(BaseOperator):
    """The version this run compares: the one it trained (``register``) or the one handed over."""

    def __init__(self, *, load_task_id: str, register_task_id: str, handed_over_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        super().__init__(**kwargs)
        self.load_task_id, self.register_task_id = load_task_id, register_task_id
        self.handed_over_task_id = handed_over_task_id

    def execute(self, context: Context) -> payloads.Candidate:
        given: payloads.Candidate | None = _pull(context, self.handed_over_task_id)
        if given:
            return given
        loaded: LoadedData | None = _pull(context, self.load_task_id)
        registered: RegisteredVersion | None = _pull(context, self.register_task_id)
        if not loaded or not registered:
            raise MissingUpstream(f"neither {self.handed_over_task_id!r} nor {self.register_task_id!r} left a version")
        return {"parent_run_id": loaded["parent_run_id"], "registered": registered, "handed_over": False}


class CompareOperator(BaseBranchOperator):
    """Champion vs challenger on the same hold-out; branches to the dry-run, reject, promote or canary task.

    The four task ids are the DAG's; each must be a direct downstream of this task (a branch skips
    every direct downstream it does not choose). The decision is pushed as XCom ``decision``.
    """

    template_fields: Sequence[str] = ("candidate",)
    ui_color = "#fff4e0"

    def __init__(self, *, candidate: Any, dry_run_task_id: str, reject_task_id: str,
                 promote_task_id: str, canary_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.candidate: payloads.Candidate = candidate
        self.dry_run_task_id, self.reject_task_id = dry_run_task_id, reject_task_id
        self.promote_task_id, self.canary_task_id = promote_task_id, canary_task_id

    @property
    def branch_task_ids(self) -> set[str]:
        """Every task this branch can choose."""
        return {self.dry_run_task_id, self.reject_task_id, self.promote_task_id, self.canary_task_id}

    @maps_errors
    def choose_branch(self, context: Context) -> str:
        from autoretrain.promotion.rollout import compare_challenger

        params = context.get("params") or {}
        settings = settings_for(context)
        decision = compare_challenger(settings, parent_run_id=self.candidate["parent_run_id"],
                                      registered=self.candidate["registered"], force=bool(params.get("force")))
        context["ti"].xcom_push(key="decision", value=decision)
        if params.get("dry_run"):
            return self.dry_run_task_id
        if not decision["promote"]:
            return self.reject_task_id
        no_canary = decision["champion_version"] is None or settings.canary_minutes == 0
        return self.promote_task_id if no_canary else self.canary_task_id


class StartCanaryOperator(BaseOperator):
    """``challenger`` alias on the new version and canary routing; the XCom is the canary's description."""

    ui_color = "#fff4e0"

    def __init__(self, *, decision_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decision_task_id = decision_task_id

    @maps_errors
    def execute(self, context: Context) -> payloads.CanaryStart:
        from autoretrain.promotion.rollout import start_canary

        decision = _decision(context, self.decision_task_id)
        return start_canary(settings_for(context), version=decision["version"], reasons=decision["reasons"],
                            metrics=_metrics(decision), **audit_ids(context))


class CanarySensor(BaseSensorOperator):
    """Waits for the canary verdict (pass or fail) over the window; the XCom is the verdict."""

    ui_color = "#fdf2d0"

    def __init__(self, *, start_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("timeout", timedelta(hours=24).total_seconds())
        super().__init__(**kwargs)
        self.start_task_id = start_task_id

    @maps_errors
    def poke(self, context: Context) -> PokeReturnValue:
        from autoretrain.promotion.rollout import canary_status

        canary: payloads.CanaryStart | None = _pull(context, self.start_task_id)
        if not canary:
            raise MissingUpstream(f"no canary description in XCom of {self.start_task_id!r}")
        verdict = canary_status(settings_for(context), canary=canary)
        outcome: payloads.CanaryOutcome = {**verdict, "canary": canary}
        return PokeReturnValue(is_done=verdict["status"] != "wait", xcom_value=outcome)


class CanaryBranchOperator(BaseBranchOperator):
    """``promote`` when the canary passed, ``withdraw`` when it failed."""

    def __init__(self, *, canary_task_id: str, passed_task_id: str, failed_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.canary_task_id, self.passed_task_id, self.failed_task_id = canary_task_id, passed_task_id, failed_task_id

    @maps_errors
    def choose_branch(self, context: Context) -> str:
        verdict: payloads.CanaryOutcome | None = _pull(context, self.canary_task_id)
        for reason in verdict.get("reasons", []) if verdict else []:
            self.log.info("canary: %s", reason)
        return self.passed_task_id if verdict and verdict.get("status") == "pass" else self.failed_task_id


class PromoteOperator(BaseOperator):
    """``champion`` -> the challenger (old champion recorded as ``previous``), routing full; promotion alert."""

    ui_color = "#e9f7ef"

    def __init__(self, *, decision_task_id: str, canary_task_id: str, trigger_task_id: str,
                 approval_task_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decision_task_id, self.canary_task_id, self.trigger_task_id = (decision_task_id, canary_task_id,
                                                                             trigger_task_id)
        self.approval_task_id = approval_task_id

    @maps_errors
    def execute(self, context: Context) -> payloads.Promotion:
        from autoretrain.promotion.approval import approval_metrics
        from autoretrain.promotion.rollout import promote_challenger

        decision = _decision(context, self.decision_task_id)
        canary: payloads.CanaryOutcome | None = _pull(context, self.canary_task_id)
        trigger: payloads.TriggerReason | None = _pull(context, self.trigger_task_id)
        answer: payloads.ApprovalAnswer | None = (_pull(context, self.approval_task_id, "answer")
                                                  if self.approval_task_id else None)
        if answer is not None and not answer["approved"]:
            raise MissingUpstream(f"promote ran although the approval answer was {answer['outcome']!r}")
        source, why = (trigger.get("source", "?"), trigger.get("reason", "?")) if trigger else ("?", "?")
        reasons = [f"trigger ({source}): {why}", *decision["reasons"]]
        if canary:
            reasons += [f"canary: {r}" for r in canary.get("reasons", [])]
        metrics = {**_metrics(decision), **({"canary": canary.get("numbers")} if canary else {})}
        if answer is not None and answer["outcome"] != "not_required":  # who approved goes with the move
            reasons += answer["reasons"]
            metrics["approval"] = approval_metrics(answer)
        result = promote_challenger(settings_for(context), version=decision["version"], reasons=reasons,
                                    metrics=metrics, **audit_ids(context))
        _alert("promotion", context, version=result["version"], previous_version=result["previous_version"],
               reasons=reasons)
        return result


class RejectOperator(BaseOperator):
    """The challenger stays unpromoted (no alias); rejection alert with every reason."""

    ui_color = "#fdecea"

    def __init__(self, *, decision_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decision_task_id = decision_task_id

    @maps_errors
    def execute(self, context: Context) -> payloads.Rejection:
        decision = _decision(context, self.decision_task_id)
        _alert("rejection", context, version=decision["version"], champion_version=decision["champion_version"],
               reasons=decision["reasons"])
        return {"version": decision["version"], "champion_version": decision["champion_version"],
                "reasons": decision["reasons"]}


class WithdrawOperator(BaseOperator):
    """Automatic rollback of a failed canary: routing full on the champion, ``challenger`` removed; alert.

    With ``approval_task_id``: the challenger was refused by a person or nobody answered in time; its
    ``challenger`` alias is removed with the reviewer's answer in the alias audit, a canary routing
    (if one ran) ends, and a rejection (or approval-timeout) alert goes out.
    """

    ui_color = "#fdecea"

    def __init__(self, *, decision_task_id: str, canary_task_id: str, approval_task_id: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decision_task_id, self.canary_task_id = decision_task_id, canary_task_id
        self.approval_task_id = approval_task_id

    @maps_errors
    def execute(self, context: Context) -> payloads.Withdrawal:
        from autoretrain.promotion.rollout import withdraw_challenger

        decision = _decision(context, self.decision_task_id)
        verdict: payloads.CanaryOutcome | None = _pull(context, self.canary_task_id)
        if self.approval_task_id:
            return self._not_approved(context, decision, verdict)
        said = verdict.get("reasons", ["no verdict"]) if verdict else ["no verdict"]
        reasons = [f"canary: {r}" for r in said]
        result = withdraw_challenger(settings_for(context), version=decision["version"], reasons=reasons,
                                     metrics={"canary": verdict.get("numbers") if verdict else None},
                                     **audit_ids(context))
        _alert("rollback", context, from_version=decision["version"], to_version=result["champion_version"],
               reason=f"canary of version {decision['version']} failed: {reasons[-1]}")
        return result

    def _not_approved(self, context: Context, decision: payloads.Comparison,
                      verdict: payloads.CanaryOutcome | None) -> payloads.Withdrawal:
        from autoretrain.promotion.approval import approval_metrics
        from autoretrain.promotion.rollout import withdraw_challenger

        answer: payloads.ApprovalAnswer | None = _pull(context, str(self.approval_task_id), "answer")
        if not answer or answer["approved"]:
            raise MissingUpstream(f"no refusal in XCom {self.approval_task_id!r}/answer; did it run?")
        timed_out = answer["outcome"] == "timeout"
        result = withdraw_challenger(settings_for(context), version=decision["version"], reasons=answer["reasons"],
                                     metrics={**_metrics(decision), "approval": approval_metrics(answer)},
                                     end_canary=verdict is not None, **audit_ids(context),
                                     decision="withdrawn: approval timed out" if timed_out else "rejected by reviewer")
        if timed_out:
            _alert("approval_timeout", context, version=decision["version"],
                   champion_version=decision["champion_version"],
                   timeout_hours=settings_for(context).approval_timeout_hours)
        else:
            _alert("rejection", context, version=decision["version"], champion_version=decision["champion_version"],
                   reasons=answer["reasons"])
        return result


class RollbackOperator(BaseOperator):
    """Champion back to the recorded ``previous`` (Param ``to_version`` overrides) in one step; alert."""

    ui_color = "#fdecea"

    @maps_errors
    def execute(self, context: Context) -> payloads.Rollback:
        from autoretrain.promotion.rollout import rollback

        params = context.get("params") or {}
        reason = str(params.get("reason") or "rollback requested")
        # no previous champion / an unknown version is a RegistryError: it fails without retry
        result = rollback(settings_for(context), reason=reason, to_version=params.get("to_version") or None,
                          **audit_ids(context))
        _alert("rollback", context, from_version=result["from_version"], to_version=result["to_version"],
               reason=reason)
        return result
