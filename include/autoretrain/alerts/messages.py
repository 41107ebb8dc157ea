"""Alerts as pure values: message builders, severity routing and the cool-down rule (no I/O).

The same text goes to the log, the alert table and Slack. Delivery (the Slack provider's
notifiers, the alert table) lives in :mod:`autoretrain.airflow.alerting`; everything here is
tested without Slack. Free text that may come from data (errors, check details, reasons) is
redacted with :func:`autoretrain.data.pii.redact` before it enters a message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from autoretrain.config import Settings
from autoretrain.data.pii import redact

SEVERITIES = ("info", "warning", "critical")
ICONS = {"info": ":information_source:", "warning": ":warning:", "critical": ":red_circle:"}
#: Slack accepts far more, but an alert that needs more than this is not being read
MAX_TEXT_CHARS = 3000


@dataclass(frozen=True)
class Alert:
    """One event worth telling people about: what, how bad, the message, and its de-duplication key.

    ``text`` is the Slack rendering; the parts it is made of (``body``, ``done``, ``todo``, the task
    log link) are kept too, so the e-mail (:mod:`autoretrain.alerts.email`) renders the same
    message, and links added later (:func:`with_links`) appear in both.
    """

    kind: str
    severity: str
    title: str
    text: str
    dedup_key: str
    links: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    body: tuple[str, ...] = field(default=(), compare=False)
    done: str = field(default="", compare=False)
    todo: str = field(default="", compare=False)
    log_url: str | None = field(default=None, compare=False)
    model_version: str | None = field(default=None, compare=False)  # the version it is about (Model Ops link)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {SEVERITIES}")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "title": self.title, "text": self.text,
                "dedup_key": self.dedup_key, "links": dict(self.links)}


# ------------------------------------------------------------------------------------------ links
def airflow_run_url(base_url: str, dag_id: str, run_id: str) -> str:
    """The Airflow 3 UI page of a DAG run."""
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def mlflow_run_url(tracking_uri: str, run_id: str | None) -> str | None:
    """The MLflow UI page of a run, when the tracking URI is an MLflow server (else None)."""
    if not tracking_uri.startswith(("http://", "https://")) or not run_id:
        return None
    return f"{tracking_uri.rstrip('/')}/#/runs/{run_id}"


def mlflow_model_url(tracking_uri: str, name: str, version: str | int) -> str | None:
    """The MLflow UI page of a registered model version (None without an MLflow server)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    return f"{tracking_uri.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{version}"


def modelops_page_url(base_url: str, *, model_name: str, version: str | int | None = None) -> str | None:
    """The Model Ops page of a model (and version): ``<base>?model=<name>[&version=<v>]``; None without a base.

    ``base_url`` is the setting ``modelops_url`` (e.g. ``http://airflow:8080/modelops``, the
    plugin's page); empty means there is no such page to link to.
    """
    if not base_url.strip().startswith(("http://", "https://")):
        return None
    query = {"model": model_name, **({"version": str(version)} if version is not None else {})}
    return f"{base_url.strip().rstrip('/')}?{urlencode(query)}"


# ------------------------------------------------------------------------------------- builders
#: listed items (checks, reasons) per alert; the rest is one link away
MAX_ITEMS = 6
LINK_LABELS = {"airflow": "Airflow run", "mlflow": "MLflow", "model": "MLflow version", "modelops": "Model Ops",
               "log": "task log"}


def _clip(text: Any, limit: int = 200) -> str:
    """One line of at most ``limit`` characters, cut at a word boundary (never inside a figure)."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def _num(value: Any) -> str:
    """A figure as people read it: four significant digits (0.0312, 0.9815, 1000)."""
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def _items(lines: Sequence[str], *, more: str) -> list[str]:
    """At most :data:`MAX_ITEMS` bullet lines, then how many more there are and where."""
    shown = [f"• {line}" for line in lines[:MAX_ITEMS]]
    if len(lines) > MAX_ITEMS:
        shown.append(f"• … and {len(lines) - MAX_ITEMS} more ({more})")
    return shown


def _alert(kind: str, severity: str, title: str, body: Sequence[str], *, done: str, todo: str, dedup_key: str,
           airflow_url: str | None, mlflow_url: str | None, log_url: str | None = None,
           model_url: str | None = None, model_version: str | int | None = None) -> Alert:
    """The alert: title, the few figures that matter, what was done, what a person may do, links."""
    named = (("airflow", airflow_url), ("mlflow", mlflow_url), ("model", model_url))
    links = tuple((k, v) for k, v in named if v)
    return Alert(kind=kind, severity=severity, title=title, text=render_text(severity, title, body, done=done,
                 todo=todo, links=links, log_url=log_url), dedup_key=dedup_key, links=links, body=tuple(body),
                 done=done, todo=todo, log_url=log_url,
                 model_version=None if model_version is None else str(model_version))


def render_text(severity: str, title: str, body: Sequence[str], *, done: str, todo: str,
                links: Sequence[tuple[str, str]], log_url: str | None = None) -> str:
    """The Slack-formatted text (mrkdwn), at most :data:`MAX_TEXT_CHARS` characters."""
    targets = [*links, *([("log", log_url)] if log_url else [])]
    link_line = " · ".join(f"<{url}|{LINK_LABELS[kind]}>" for kind, url in targets)
    lines = [f"{ICONS[severity]} *{title}*", *body, f"*Done:* {done}", f"*You can:* {todo}"]
    if link_line:
        lines.append(link_line)
    text = "\n".join(lines)
    if len(text) > MAX_TEXT_CHARS:  # never cut a line in half: drop whole lines from the end of the body
        text = text[: MAX_TEXT_CHARS - 2].rsplit("\n", 1)[0] + "\n…"
    return text


def with_links(alert: Alert, extra: Sequence[tuple[str, str | None]]) -> Alert:
    """``alert`` with more named links (``model``, ``modelops``...), in its text too; a name it has is kept."""
    have = {name for name, _ in alert.links}
    added = tuple((name, url) for name, url in extra if url and name not in have)
    if not added:
        return alert
    links = (*alert.links, *added)
    return replace(alert, links=links, text=render_text(alert.severity, alert.title, alert.body, done=alert.done,
                                                        todo=alert.todo, links=links, log_url=alert.log_url))


def scrubbed(alert: Alert, scrub: Callable[[str], str]) -> Alert:
    """``alert`` with ``scrub`` applied to every text part and link (secrets out before anything is sent)."""
    links = tuple((name, scrub(url)) for name, url in alert.links)
    log_url = scrub(alert.log_url) if alert.log_url else None
    body = tuple(scrub(line) for line in alert.body)
    if not body and not alert.done:  # built by hand, not by a builder: only the text exists
        return replace(alert, title=scrub(alert.title), text=scrub(alert.text), links=links, log_url=log_url)
    title, done, todo = scrub(alert.title), scrub(alert.done), scrub(alert.todo)
    return replace(alert, title=title, body=body, done=done, todo=todo, links=links, log_url=log_url,
                   text=render_text(alert.severity, title, body, done=done, todo=todo, links=links, log_url=log_url))


def _check_line(check: Mapping[str, Any], *, over: bool = False) -> str:
    """``name score > limit`` (``over``: a drift check, over its limit) or ``name score (limit x)``.

    Dataset checks have limits in both directions (at least 1000 rows, at most 20 % duplicates), so
    theirs are shown side by side; a short redacted detail follows when the check gives one as text.
    """
    score, limit = _num(check.get("score", 0.0)), _num(check.get("threshold", 0.0))
    line = f"{check['name']} {score} > limit {limit}" if over else f"{check['name']} {score} (limit {limit})"
    details = check.get("details")
    if isinstance(details, str) and details.strip():  # structured details stay in MLflow, not in the message
        line += f": {_clip(redact(details), 120)}"
    elif isinstance(details, Mapping) and details.get("emerging_terms"):  # the one detail worth a glance
        terms = [str(t.get("term")) for t in details["emerging_terms"][:5] if isinstance(t, Mapping)]
        line += f": new or surging terms {_clip(redact(', '.join(terms)), 80)}"
    return line


def task_failure_alert(*, dag_id: str, task_id: str, run_id: str, try_number: int | None,
                       error: str | None, airflow_url: str | None = None, log_url: str | None = None,
                       mlflow_url: str | None = None) -> Alert:
    """A task failed for good (retries exhausted)."""
    body = [f"Run `{run_id}`, try {try_number or '?'}"]
    if error:
        body.append(f"Error: {_clip(redact(error), 300)}")
    return _alert("task_failure", "critical", f"Task failed: {dag_id}.{task_id}", body,
                  done="no more retries; the tasks after it did not run",
                  todo="read the task log, fix the cause, then clear the task in Airflow to run it again",
                  dedup_key=f"task_failure:{dag_id}.{task_id}", airflow_url=airflow_url, mlflow_url=mlflow_url,
                  log_url=log_url)


def validation_failure_alert(*, source: str, failures: Sequence[Mapping[str, Any]], run_id: str,
                             airflow_url: str | None = None, mlflow_url: str | None = None) -> Alert:
    """A dataset failed blocking checks: no training starts on it."""
    names = sorted(str(f["name"]) for f in failures)
    body = [f"Source `{_clip(redact(source), 160)}`, run `{run_id}`",
            f"{len(failures)} blocking check(s) failed:",
            *_items([_check_line(f) for f in failures], more="the validation report")]
    return _alert("validation_failed", "critical", "Dataset validation failed", body,
                  done="no model is trained on this data; the champion keeps serving",
                  todo="fix the data at its source, or run again with another data source",
                  dedup_key=f"validation_failed:{source}:{','.join(names)}", airflow_url=airflow_url,
                  mlflow_url=mlflow_url)


def drift_alert(*, model_name: str, checks: Sequence[Mapping[str, Any]], run_id: str,
                airflow_url: str | None = None, mlflow_url: str | None = None,
                action: str = "retrain_compare_promote was triggered to train and compare a challenger") -> Alert:
    """Live inputs or predictions drifted from the training reference."""
    drifted = [c for c in checks if c.get("drifted", not c.get("passed", True))]
    drifted.sort(key=lambda c: float(c.get("score", 0.0)) - float(c.get("threshold", 0.0)), reverse=True)
    names = sorted(str(c["name"]) for c in drifted)
    body = [f"{len(drifted)} of {len(checks)} drift checks over their limit (monitoring run `{run_id}`):",
            *_items([_check_line(c, over=True) for c in drifted], more="all scores in the MLflow run")]
    return _alert("drift", "warning", f"Drift detected for {model_name}", body, done=action,
                  todo="follow the retrain run; the champion serves until a challenger is promoted",
                  dedup_key=f"drift:{model_name}:{','.join(names)}", airflow_url=airflow_url,
                  mlflow_url=mlflow_url)


def regression_alert(*, model_name: str, version: str | int, findings: Sequence[Mapping[str, Any]], run_id: str,
                     action: str, window: str = "", n_labelled: int | None = None, airflow_url: str | None = None,
                     mlflow_url: str | None = None, model_url: str | None = None) -> Alert:
    """The champion's live performance on feedback fell: accuracy under its floor, or F1 down by more than its limit.

    ``findings`` come from :func:`autoretrain.monitoring.regression.find_regressions` (``metric``,
    ``value``, ``limit``, and ``baseline`` for a drop against the champion's own evaluation);
    ``action`` says what the monitoring run did about it (retrain triggered, or waiting).
    """
    span = f" in {window}" if window else ""
    labelled = f", {n_labelled} labelled predictions" if n_labelled is not None else ""
    body = [f"Monitoring run `{run_id}`{span}{labelled}:", *_items([_regression_line(f) for f in findings],
                                                                   more="the MLflow run")]
    metrics = ",".join(sorted(str(f["metric"]) for f in findings))
    return _alert("regression", "critical", f"{model_name} version {version} regressed on live feedback", body,
                  done=f"version {version} keeps serving; {action}",
                  todo="roll back now with the rollback DAG (or `autoretrain rollback`) if the previous version did "
                       "better; read the window's labelled feedback in the MLflow run",
                  dedup_key=f"regression:{model_name}:{version}:{metrics}", airflow_url=airflow_url,
                  mlflow_url=mlflow_url, model_url=model_url, model_version=version)


def _regression_line(finding: Mapping[str, Any]) -> str:
    metric, value, limit = finding["metric"], _num(finding["value"]), _num(finding["limit"])
    if finding.get("baseline") is None:
        return f"{metric} {value} is under the floor {limit}"
    drop = _num(float(finding["baseline"]) - float(finding["value"]))
    return f"{metric} {value} is {drop} under its evaluation {_num(finding['baseline'])} (limit {limit})"


def stale_data_alert(*, source: str, age_days: float, limit_days: float, details: str, run_id: str,
                     airflow_url: str | None = None, mlflow_url: str | None = None) -> Alert:
    """No new labelled data (feedback or a new snapshot) arrived within ``freshness_days``."""
    body = [f"Source `{_clip(redact(source), 160)}`, validation run `{run_id}`:",
            f"newest labelled data is {_num(age_days)} days old (limit {_num(limit_days)} days)"]
    if details.strip():
        body.append(f"Check: {_clip(redact(details), 200)}")
    return _alert("stale_data", "warning", f"No new labelled data for {age_days:.0f} days", body,
                  done="the data passed its blocking checks and is used as it is; monitoring and retraining learn "
                       "nothing new until labels come back",
                  todo="check that feedback still reaches POST /feedback and that feedback_uri is updated; raise "
                       "freshness_days if this source is meant to change less often",
                  dedup_key=f"stale_data:{redact(source)[:300]}", airflow_url=airflow_url, mlflow_url=mlflow_url)


def deadline_alert(*, dag_id: str, run_id: str, limit: str, deadline_time: str, state: str,
                   airflow_url: str | None = None, mlflow_url: str | None = None) -> Alert:
    """An Airflow Deadline Alert: a DAG run was not finished by its deadline."""
    body = [f"Run `{run_id}` is still {state} past its deadline {deadline_time} ({limit})"]
    return _alert("deadline", "warning", f"{dag_id} run missed its deadline", body,
                  done="nothing was stopped: the run goes on, and Airflow records the missed deadline",
                  todo="open the run: a task waiting for a worker slot or pool, a sensor still poking, or a call to "
                       "MLflow or the database that hangs; mark the run failed to stop it, or clear the stuck task",
                  dedup_key=f"deadline:{dag_id}:{run_id}:{limit}", airflow_url=airflow_url, mlflow_url=mlflow_url)


def prediction_log_alert(*, service: str, status: str, reasons: Sequence[str], backlog_rows: int,
                         spool: str) -> Alert:
    """The prediction service's log rows back up (warning: kept in its spool) or are dropped (critical)."""
    severity = "critical" if status == "failing" else "warning"
    what = "drops prediction-log rows" if status == "failing" else "is backing up prediction-log rows"
    body = [f"{backlog_rows} rows wait in the spool `{spool}`", *_items([_clip(redact(r)) for r in reasons],
                                                                        more="/ready")]
    return _alert("prediction_log", severity, f"{service} {what}", body,
                  done="predictions are still answered; spooled rows are inserted once the database accepts them",
                  todo="check the database (read-only after a failover? migrated? reachable?) and the disk "
                       "of state_dir; /ready and the autoretrain_prediction_log_* metrics show the state",
                  dedup_key=f"prediction_log:{service}:{severity}", airflow_url=None, mlflow_url=None)


def promotion_alert(*, model_name: str, version: str | int, previous_version: str | int | None,
                    reasons: Sequence[str], run_id: str, airflow_url: str | None = None,
                    mlflow_url: str | None = None) -> Alert:
    """A challenger became champion."""
    was = f", replacing version {previous_version}" if previous_version is not None else ""
    body = [f"Version {version} is champion{was} (run `{run_id}`). Why:",
            *_items([_clip(redact(r)) for r in reasons], more="the alias audit")]
    kept = f"; version {previous_version} is kept as previous" if previous_version is not None else ""
    return _alert("promotion", "info", f"{model_name} version {version} promoted to champion", body,
                  done=f"the prediction service swaps to version {version} on its next poll{kept}",
                  todo="roll back in one step with the rollback DAG (or `autoretrain rollback`)",
                  dedup_key=f"promotion:{model_name}:{version}", airflow_url=airflow_url, mlflow_url=mlflow_url,
                  model_version=version)


def rejection_alert(*, model_name: str, version: str | int, champion_version: str | int | None,
                    reasons: Sequence[str], run_id: str, airflow_url: str | None = None,
                    mlflow_url: str | None = None) -> Alert:
    """A challenger was not promoted; the champion stays."""
    kept = f"version {champion_version} stays champion" if champion_version is not None else "there is no champion"
    body = [f"Version {version} was not promoted (run `{run_id}`). Why:",
            *_items([_clip(redact(r)) for r in reasons], more="the comparison in MLflow")]
    return _alert("rejection", "info", f"{model_name} version {version} rejected", body,
                  done=f"{kept}; version {version} gets no alias",
                  todo="read the comparison and model card in MLflow; more labelled data starts another retrain",
                  dedup_key=f"rejection:{model_name}:{version}", airflow_url=airflow_url, mlflow_url=mlflow_url,
                  model_version=version)


def rollback_alert(*, model_name: str, from_version: str | int, to_version: str | int, reason: str,
                   run_id: str, airflow_url: str | None = None, mlflow_url: str | None = None) -> Alert:
    """The champion alias went back to a previous version."""
    body = [f"Champion: version {from_version} → version {to_version} (run `{run_id}`)",
            f"Reason: {_clip(redact(reason), 300)}"]
    return _alert("rollback", "critical", f"{model_name} rolled back to version {to_version}", body,
                  done=f"version {to_version} serves all traffic again",
                  todo=f"find out what was wrong with version {from_version} before the next promotion",
                  dedup_key=f"rollback:{model_name}:{from_version}->{to_version}", airflow_url=airflow_url,
                  mlflow_url=mlflow_url, model_version=to_version)


def gate_failure_alert(*, model_name: str, version: str | int, reasons: Sequence[str], run_id: str,
                       airflow_url: str | None = None, mlflow_url: str | None = None) -> Alert:
    """A newly trained version failed its absolute quality gates (it gets no alias)."""
    failed = [r for r in reasons if "FAIL" in r or "missing" in r] or list(reasons)
    body = [f"Version {version} (run `{run_id}`) failed:",
            *_items([_clip(redact(r)) for r in failed], more="its model card")]
    return _alert("gate_failed", "warning",
                  f"{model_name} version {version} failed its quality gates and gets no alias", body,
                  done="the version is registered without an alias; the champion is unchanged",
                  todo="read its model card in MLflow; more or cleaner training data usually fixes it",
                  dedup_key=f"gate_failed:{model_name}:{version}", airflow_url=airflow_url, mlflow_url=mlflow_url,
                  model_version=version)


def integrity_alert(*, model_name: str, version: str | int, alias: str, reason: str,
                    serving_version: str | int | None, where: str = "the prediction service",
                    airflow_url: str | None = None, mlflow_url: str | None = None) -> Alert:
    """A model version that AutoRetrain did not register and vet (or whose bytes changed) was refused."""
    body = [f"`{alias}` points at version {version}, which {where} refused to load:",
            f"Reason: {_clip(redact(reason), 300)}"]
    kept = (f"version {serving_version} keeps serving" if serving_version is not None
            else "nothing serves for this alias until a vetted version is loaded")
    return _alert("model_integrity", "critical", f"{model_name} version {version} refused: not vetted by AutoRetrain",
                  body, done=f"nothing of version {version} was deserialized; {kept}; it is not retried",
                  todo="find out who moved the alias or changed the artifact in MLflow (its audit log, the "
                       "alias_audit table), move it back with `autoretrain rollback`, then POST /admin/reload",
                  dedup_key=f"model_integrity:{model_name}:{version}", airflow_url=airflow_url,
                  mlflow_url=mlflow_url, model_version=version)


def external_alias_move_alert(*, model_name: str, changes: Sequence[Mapping[str, Any]], run_id: str,
                              airflow_url: str | None = None, mlflow_url: str | None = None) -> Alert:
    """An alias was moved outside AutoRetrain (found by the reconciler): what serves now was never vetted here."""
    moved = [f"{c['alias']}: audited version {c.get('from_version') or 'none'} → version "
             f"{c.get('to_version') or 'none'} in MLflow" for c in changes]
    body = [f"The reconciler (run `{run_id}`) found aliases that AutoRetrain did not move:",
            *_items(moved, more="the alias audit")]
    key = ",".join(f"{c['alias']}={c.get('to_version')}" for c in changes)
    return _alert("external_alias_move", "critical", f"{model_name}: alias moved outside AutoRetrain", body,
                  done="recorded as 'external' in the alias audit; the prediction service follows MLflow's aliases",
                  todo="find who moved it (MLflow's access log); if it was not meant, `autoretrain rollback --to "
                       "<version>` puts champion back through the audit",
                  dedup_key=f"external_alias_move:{model_name}:{key}", airflow_url=airflow_url, mlflow_url=mlflow_url)


def approval_request_alert(*, model_name: str, version: str | int, champion_version: str | int | None, subject: str,
                           timeout_hours: float, run_id: str, airflow_url: str | None = None,
                           mlflow_url: str | None = None, champion_url: str | None = None) -> Alert:
    """A challenger passed its comparison (and canary) and waits for a person (``promotion_mode=approve``)."""
    against = f"champion version {champion_version}" if champion_version is not None else "no champion yet"
    body = [f"{_clip(subject)} (run `{run_id}`, {against})",
            "The request shows both models' metrics side by side, the paired tests and every reason."]
    if champion_url:
        body.append(f"Champion's model card: <{champion_url}|version {champion_version}>")
    return _alert("approval_request", "warning", f"{model_name} version {version} waits for your approval", body,
                  done=f"version {version} is the challenger; nothing is promoted until someone answers",
                  todo=f"Approve or Reject under Browse → Required Actions (or the REST API's hitlDetails) within "
                       f"{timeout_hours:g} h; no answer withdraws it",
                  dedup_key=f"approval_request:{model_name}:{version}", airflow_url=airflow_url,
                  mlflow_url=mlflow_url)


def approval_timeout_alert(*, model_name: str, version: str | int, champion_version: str | int | None,
                           timeout_hours: float, run_id: str, airflow_url: str | None = None,
                           mlflow_url: str | None = None) -> Alert:
    """Nobody answered the approval request in time: the challenger was withdrawn."""
    kept = f"version {champion_version} stays champion" if champion_version is not None else "there is no champion"
    body = [f"Nobody approved or rejected version {version} within {timeout_hours:g} h (run `{run_id}`)."]
    return _alert("approval_timeout", "warning", f"{model_name} version {version} withdrawn: approval timed out", body,
                  done=f"version {version} lost the challenger alias; {kept}",
                  todo=f"hand it over again: trigger retrain_compare_promote with Param version = {version}",
                  dedup_key=f"approval_timeout:{model_name}:{version}", airflow_url=airflow_url, mlflow_url=mlflow_url)


BUILDERS: dict[str, Callable[..., Alert]] = {
    "task_failure": task_failure_alert,
    "validation_failed": validation_failure_alert,
    "drift": drift_alert,
    "regression": regression_alert,
    "promotion": promotion_alert,
    "rejection": rejection_alert,
    "rollback": rollback_alert,
    "gate_failed": gate_failure_alert,
    "model_integrity": integrity_alert,
    "external_alias_move": external_alias_move_alert,
    "approval_request": approval_request_alert,
    "approval_timeout": approval_timeout_alert,
    "stale_data": stale_data_alert,
    "deadline": deadline_alert,
}


def build_alert(kind: str, **fields: Any) -> Alert:
    """The alert of ``kind`` (a key of :data:`BUILDERS`) from its builder's keyword fields."""
    try:
        builder = BUILDERS[kind]
    except KeyError as err:
        raise ValueError(f"unknown alert kind {kind!r}; known: {sorted(BUILDERS)}") from err
    return builder(**fields)


# --------------------------------------------------------------------------- routing, cool-down
@dataclass(frozen=True)
class Route:
    """Where an alert goes: ``slack_api`` (a channel), ``slack_webhook``, ``email`` (recipients) or only ``log``."""

    transport: str
    conn_id: str | None = None
    channel: str | None = None


def route_for(severity: str, settings: Settings) -> Route:
    """The Slack API connection with the severity's channel, else the webhook, else the log only.

    An empty channel for a severity keeps that severity off Slack. A webhook posts to the one
    channel it was created for, so with a webhook the channel settings only decide on/off.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {SEVERITIES}")
    channel = getattr(settings, f"alert_channel_{severity}").strip()
    if not channel:
        return Route("log")
    if settings.slack_conn_id:
        return Route("slack_api", settings.slack_conn_id, channel)
    if settings.slack_webhook_conn_id:
        return Route("slack_webhook", settings.slack_webhook_conn_id, None)
    return Route("log")


def routes_for(severity: str, settings: Settings) -> tuple[Route, ...]:
    """Every channel an alert of ``severity`` goes to: Slack (or the log only, :func:`route_for`), then e-mail.

    E-mail is added when ``alert_email_to`` names recipients and ``severity`` is one of
    ``alert_email_severities``; its route's ``channel`` is the recipient list.
    """
    routes = [route_for(severity, settings)]
    if settings.alert_email_to and severity in settings.alert_email_severities:
        routes.append(Route("email", settings.smtp_conn_id, ", ".join(settings.alert_email_to)))
    return tuple(routes)


def in_cooldown(last_delivered: datetime | None, now: datetime, cooldown: timedelta) -> bool:
    """True when the same alert was delivered less than ``cooldown`` before ``now``."""
    if last_delivered is None or cooldown <= timedelta(0):
        return False
    return now - last_delivered < cooldown
