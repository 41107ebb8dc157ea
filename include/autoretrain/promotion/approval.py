"""The approval gate of ``promotion_mode=approve``: what a person is asked, and what their answer means.

Pure functions: :func:`request_subject` / :func:`request_body` turn a comparison (and the canary's
verdict, where one ran) into the Markdown the reviewer reads in Airflow's Required Actions (metrics
side by side, the paired tests' p-values, every reason, links to both model cards);
:func:`read_answer` turns Airflow's Human-in-the-loop response (or its timeout) into an
:class:`~autoretrain.promotion.payloads.ApprovalAnswer` whose reasons go into the alias audit with
the move that follows (approve -> promote, reject or timeout -> withdraw). The waiting itself is
Airflow's (:mod:`autoretrain.airflow.approval`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from autoretrain.promotion import payloads

#: the two answers (the labels Airflow shows as buttons; the same as its ApprovalOperator's)
APPROVE, REJECT = "Approve", "Reject"
OPTIONS = (APPROVE, REJECT)
#: what the timeout chooses: no answer is never an approval
DEFAULT = REJECT
#: the metrics shown side by side, in this order
SHOWN = ("accuracy", "precision", "recall", "f1", "mcc", "fpr", "ece")
#: the longest reviewer comment kept (the alias audit is read by people, not a document store)
MAX_COMMENT_CHARS = 500


def request_subject(comparison: payloads.Comparison) -> str:
    """One line: which version, against which champion."""
    champion = comparison.get("champion_version")
    against = f" (champion: version {champion})" if champion else " (first champion)"
    return f"Approve {comparison['name']} version {comparison['version']} as champion?{against}"


def request_body(comparison: payloads.Comparison, *, canary: Mapping[str, Any] | None = None,
                 challenger_url: str | None = None, champion_url: str | None = None,
                 timeout_hours: float | None = None) -> str:
    """The Markdown of the request: metrics side by side, the tests, the reasons, the model cards."""
    numbers = comparison.get("numbers") or {}
    challenger, champion = numbers.get("challenger") or {}, numbers.get("champion") or {}
    lines = [f"**{comparison['name']}** version **{comparison['version']}** passed its comparison"
             + (" and its canary." if canary else "."),
             "", f"Hold-out of {numbers.get('n', '?')} messages ({numbers.get('n_positive', '?')} positive).", "",
             f"| metric | champion (v{champion.get('version', '-')}) | challenger (v{comparison['version']}) |",
             "|---|---|---|"]
    lines += [f"| {m} | {_num(champion.get(m))} | {_num(challenger.get(m))} |" for m in SHOWN if m in challenger]
    mcnemar, bootstrap = numbers.get("mcnemar"), numbers.get("bootstrap")
    if mcnemar or bootstrap:
        lines.append("")
    if mcnemar:
        lines.append(f"- McNemar: p = {_num(mcnemar.get('p_value'))} (challenger alone right {mcnemar.get('c')}, "
                     f"champion alone right {mcnemar.get('b')})")
    if bootstrap:
        lines.append(f"- paired bootstrap of {bootstrap.get('metric')}: delta {_num(bootstrap.get('delta'))}, "
                     f"CI [{_num(bootstrap.get('ci_low'))}, {_num(bootstrap.get('ci_high'))}], "
                     f"p = {_num(bootstrap.get('p_value'))}")
    lines += ["", "**Reasons**", *[f"- {r}" for r in comparison.get("reasons", [])]]
    if canary:
        lines += ["", "**Canary**", *[f"- {r}" for r in canary.get("reasons", [])]]
    links = [f"[challenger's model card]({challenger_url})" if challenger_url else None,
             f"[champion's model card]({champion_url})" if champion_url else None]
    if any(links):
        lines += ["", " · ".join(link for link in links if link)]
    if timeout_hours is not None:
        lines += ["", f"No answer within {timeout_hours:g} h withdraws the challenger. Approve promotes it; "
                      "Reject withdraws it (your comment goes into the alias audit)."]
    return "\n".join(lines)


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return str(value)


def read_answer(response: Mapping[str, Any], *, version: str,
                requested_at: str | None = None) -> payloads.ApprovalAnswer:
    """Airflow's Human-in-the-loop result -> the approval answer (a timeout is never an approval).

    ``response`` has ``chosen_options``, ``params_input`` (``comment``), ``responded_by_user``
    (``{"id", "name"}``; None when the timeout chose), ``responded_at`` and ``timedout``.
    """
    chosen = list(response.get("chosen_options") or [])
    user = response.get("responded_by_user") or None
    timed_out = bool(response.get("timedout")) or user is None
    comment = " ".join(str((response.get("params_input") or {}).get("comment") or "").split())[:MAX_COMMENT_CHARS]
    at = response.get("responded_at")
    at_text = at.isoformat() if isinstance(at, datetime) else (str(at) if at else None)
    by = str(user.get("name") or user.get("id")) if user else None
    by_id = str(user.get("id")) if user else None
    if timed_out:
        outcome: payloads.ApprovalOutcome = "timeout"
        reasons = [f"approval: no answer before the timeout (requested {requested_at or '?'}); withdrawn"]
    elif chosen == [APPROVE]:
        outcome = "approved"
        reasons = [f"approval: approved by {by}" + (f": {comment}" if comment else "")]
    elif chosen == [REJECT]:
        outcome = "rejected"
        reasons = [f"approval: rejected by {by}" + (f": {comment}" if comment else "")]
    else:
        raise ValueError(f"approval answer {chosen!r} is not one of {list(OPTIONS)}")
    return {"outcome": outcome, "approved": outcome == "approved", "by": by, "by_id": by_id, "comment": comment,
            "at": at_text, "requested_at": requested_at, "version": version, "reasons": reasons}


def not_required(version: str) -> payloads.ApprovalAnswer:
    """The answer of ``promotion_mode=auto``: nobody is asked."""
    return {"outcome": "not_required", "approved": True, "by": None, "by_id": None, "comment": "", "at": None,
            "requested_at": None, "version": version, "reasons": []}


def approval_metrics(answer: payloads.ApprovalAnswer) -> dict[str, Any]:
    """What the alias audit keeps of an answer (under ``metrics["approval"]``)."""
    keep: Sequence[str] = ("outcome", "by", "by_id", "comment", "at", "requested_at")
    return {k: answer[k] for k in keep}  # type: ignore[literal-required]
