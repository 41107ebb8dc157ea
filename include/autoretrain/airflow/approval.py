"""The approval gate of ``retrain_compare_promote``: Airflow's Human-in-the-loop operator, thin over
:mod:`autoretrain.promotion.approval`.

``promotion_mode=auto``: the task branches to ``promote`` at once (nobody is asked).
``promotion_mode=approve``: it puts ``challenger`` on the version (audited), writes the request
(subject, Markdown body with the comparison, options Approve / Reject, a ``comment`` field) and
parks in ``awaiting_input`` without holding a worker slot (Airflow 3.3's HITL); the request appears
under Browse -> Required Actions and is answered there or through the REST API
(``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/approval/-1/hitlDetails``). The answer
resumes it: Approve -> ``promote``; Reject, or no answer within ``approval_timeout_hours`` (the
scheduler's sweep chooses the default, Reject, with no user) -> ``not_approved``. The answer is
the XCom (who, when, the comment) that those tasks record with their alias move.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import BranchMixIn, Context, Param, TriggerRule

from autoretrain.airflow.context import airflow_url, audit_ids, settings_for
from autoretrain.airflow.errors import maps_errors
from autoretrain.promotion import payloads
from autoretrain.promotion.approval import DEFAULT, OPTIONS


class ApprovalGateOperator(HITLOperator, BranchMixIn):
    """Waits for a person in ``approve`` mode (passes through in ``auto``); branches to promote or not_approved."""

    inherits_from_skipmixin = True
    ui_color = "#e8e0f7"

    def __init__(self, *, decision_task_id: str, canary_task_id: str, promote_task_id: str,
                 refused_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)  # after no_canary or the canary
        kwargs.pop("params", None)  # the DAG's Params (apply_defaults): the form holds only this task's own
        comment = Param("", type="string", maxLength=2000, title="Comment", source="task",
                        description="Why: recorded with the alias move in the alias audit.")
        super().__init__(subject="Approve the challenger?", options=list(OPTIONS), defaults=[DEFAULT],
                         multiple=False, params={"comment": comment}, **kwargs)
        self.decision_task_id, self.canary_task_id = decision_task_id, canary_task_id
        self.promote_task_id, self.refused_task_id = promote_task_id, refused_task_id

    @maps_errors
    def execute(self, context: Context) -> Any:
        from autoretrain.promotion import approval, rollout

        settings = settings_for(context)
        decision = _pull(context, self.decision_task_id, "decision")
        if not decision:
            raise ValueError(f"no comparison decision in XCom {self.decision_task_id!r}/decision")
        if settings.promotion_mode != "approve":
            answer = approval.not_required(str(decision["version"]))
            context["ti"].xcom_push(key="answer", value=answer)
            self.do_branch(context, self.promote_task_id)
            return answer
        canary = _pull(context, self.canary_task_id)
        rollout.hold_for_approval(settings, version=str(decision["version"]), reasons=decision["reasons"],
                                  metrics={"approval": "requested"}, **audit_ids(context))
        self.subject = approval.request_subject(decision)
        self.body = approval.request_body(decision, canary=canary, timeout_hours=settings.approval_timeout_hours,
                                          **_card_urls(settings, decision))
        self.response_timeout = timedelta(hours=settings.approval_timeout_hours)
        requested = datetime.now(UTC).isoformat()  # wall clock on purpose: the timeout is a person's
        context["ti"].xcom_push(key="requested_at", value=requested)
        _request_alert(context, settings, decision, self.subject)
        return super().execute(context)  # parks the task in awaiting_input (raises TaskAwaitingInput)

    @maps_errors
    def execute_complete(self, context: Context, event: dict[str, Any]) -> payloads.ApprovalAnswer:
        from autoretrain.promotion import approval

        decision = _pull(context, self.decision_task_id, "decision") or {}
        if event.get("error_type") == "timeout":  # no defaults reached the sweep: treat as the default
            event = {"chosen_options": [DEFAULT], "params_input": {}, "responded_by_user": None, "timedout": True,
                     "responded_at": datetime.now(UTC)}
        else:
            event = {**super().execute_complete(context, event), "timedout": bool(event.get("timedout"))}
        answer = approval.read_answer(event, version=str(decision.get("version")),
                                      requested_at=_pull(context, self.task_id, "requested_at"))
        for reason in answer["reasons"]:
            self.log.info("%s", reason)
        context["ti"].xcom_push(key="answer", value=answer)
        self.do_branch(context, self.promote_task_id if answer["approved"] else self.refused_task_id)
        return answer


def _pull(context: Context, task_id: str, key: str = "return_value") -> Any:
    return context["ti"].xcom_pull(task_ids=task_id, key=key)


def _card_urls(settings: Any, decision: payloads.Comparison) -> dict[str, str | None]:
    """Links to both versions in MLflow (the version page shows its model card)."""
    from autoretrain.alerts.messages import mlflow_model_url

    uri, name = settings.resolved_tracking_uri(), settings.model_name
    champion = decision.get("champion_version")
    return {"challenger_url": mlflow_model_url(uri, name, decision["version"]),
            "champion_url": mlflow_model_url(uri, name, champion) if champion else None}


def _request_alert(context: Context, settings: Any, decision: payloads.Comparison, subject: str) -> None:
    """Tell people a decision waits (Slack when configured; the log and the alert table always)."""
    from autoretrain.airflow.alerting import send_alert
    from autoretrain.alerts.messages import build_alert

    urls = _card_urls(settings, decision)
    alert = build_alert("approval_request", model_name=settings.model_name, version=decision["version"],
                        champion_version=decision.get("champion_version"), subject=subject,
                        timeout_hours=settings.approval_timeout_hours, run_id=str(context["run_id"]),
                        airflow_url=airflow_url(context), mlflow_url=urls["challenger_url"],
                        champion_url=urls["champion_url"])
    send_alert(alert, settings, context=context)
