"""The sections of the Model Ops page and the DAG-run tabs, from the views' dicts to escaped HTML."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from autoretrain.modelops.page import (
    airflow_run_href,
    bar_chart,
    document,
    e,
    line_chart,
    link,
    num,
    pct,
    pvalue,
    reasons_list,
    short_time,
    table,
)

SECTIONS = (("roles", "Champion / challenger / previous"), ("versions", "Versions"), ("drift", "Drift"),
            ("quality", "Live quality"), ("timeline", "Retraining timeline"), ("alerts", "Alerts"),
            ("serving", "Serving now"))


class Links:
    """Where the page links to: MLflow's UI (when the tracking URI is a server), Airflow's run pages."""

    def __init__(self, mlflow_base: str | None, model_name: str) -> None:
        self.mlflow, self.model = (mlflow_base.rstrip("/") if mlflow_base else None), model_name

    def version(self, version: Any) -> str | None:
        return f"{self.mlflow}/#/models/{quote(self.model, safe='')}/versions/{quote(str(version))}" \
            if self.mlflow else None

    def run(self, run_id: str | None) -> str | None:
        return f"{self.mlflow}/#/runs/{quote(run_id, safe='')}" if self.mlflow and run_id else None


def _metrics_cell(v: Mapping[str, Any]) -> str:
    metrics, intervals = v.get("metrics") or {}, v.get("intervals") or {}
    rows = []
    for m in ("f1", "mcc", "accuracy", "ece", "fpr"):
        interval = intervals.get(m)
        band = f" [{num(interval[0])}, {num(interval[1])}]" if interval else ""
        rows.append(f"{m} <b>{num(metrics.get(m))}</b><span class='sub'>{band}</span>")
    return "<br>".join(rows)


def roles(aliases: Mapping[str, Any], versions: Sequence[Mapping[str, Any]], links: Links) -> str:
    by_version = {str(v["version"]): v for v in versions}
    cards = []
    for role, held in aliases["roles"].items():
        version, moved = held.get("version"), held.get("moved")
        v = by_version.get(str(version), {}) if version else {}
        card = v.get("model_card")
        card_href = links.run(v.get("run_id")) if card else None
        moved_html = (f"<div class='sub'>{e(moved['action'])} {short_time(moved['at'])} by {e(moved['actor'])}"
                      f"<br>from {e(moved['from_version'])} to {e(moved['to_version'])}: {e(moved['reason'])}</div>"
                      if moved else "<div class='sub'>never set</div>")
        body = (f"<div class='v' data-role='{e(role)}'>{'v' + e(version) if version else 'none'}</div>"
                f"<div>family {e(v.get('family'))} &middot; gates {e(v.get('gates'))} &middot; decision "
                f"{e(v.get('decision'))}</div><div>{_metrics_cell(v)}</div>{moved_html}"
                f"<div>{link(links.version(version), 'MLflow version') if version else ''} "
                f"{link(links.run(v.get('run_id')), 'run') if version else ''} "
                f"{link(card_href, 'model card') if card_href else ''}</div>") if version else \
            f"<div class='v' data-role='{e(role)}'>none</div>{moved_html}"
        cards.append(f"<div class='role'><h3>{e(role)}</h3>{body}</div>")
    history = table(["when", "alias", "action", "from", "to", "actor", "run", "reason"],
                    ([short_time(m["at"]), e(m["alias"]), e(m["action"]), e(m["from_version"]), e(m["to_version"]),
                      e(m["actor"]), e(m["run_id"]), e(m["reason"])] for m in aliases["history"]))
    return (f"<section id='roles'><h2>Champion / challenger / previous</h2><div class='grid'>{''.join(cards)}</div>"
            f"<h3>Alias audit (latest {len(aliases['history'])} of {aliases['moves_total']} moves)</h3>{history}"
            "</section>")


#: at most this many versions in the chart (evenly spaced, the latest always in): more do not fit its width
CHART_POINTS = 240


def versions_section(versions: Sequence[Mapping[str, Any]], links: Links) -> str:
    step = max(1, -(-len(versions) // CHART_POINTS))
    shown = list(versions)[::-1][::step][::-1]
    labels = [f"v{v['version']}" for v in shown]
    series = {m: [(v.get("metrics") or {}).get(m) for v in shown] for m in ("f1", "mcc", "ece")}
    chart = line_chart(series, labels=labels, colors=["#1565c0", "#8e24aa", "#ef6c00"], y_max=1.0,
                       title="hold-out F1 / MCC / ECE per version" + (f" (every {step}th)" if step > 1 else ""))
    rows = ([link(links.version(v["version"]), f"v{v['version']}"), e(", ".join(v.get("aliases") or [])),
             e(v.get("family")), num((v.get("metrics") or {}).get("f1")), num((v.get("metrics") or {}).get("mcc")),
             num((v.get("metrics") or {}).get("ece")), e(v.get("gates")), e(v.get("decision")),
             short_time(v.get("registered_at")), e(v.get("registered_by") or v.get("dag_id"))]
            for v in list(reversed(versions))[:25])
    return (f"<section id='versions'><h2>Versions over time ({len(versions)})</h2><div class='grid'>{chart}</div>"
            + table(["version", "aliases", "family", "F1", "MCC", "ECE", "gates", "decision", "registered", "by"],
                    rows, numeric=(3, 4, 5)) + "</section>")


def drift_section(drift: Mapping[str, Any], links: Links) -> str:
    windows, totals = drift["windows"], drift["totals"]
    labels = [short_time(w["end"]) for w in windows]
    charts = []
    for check in drift["checks"]:
        found = [next((c for c in w["checks"] if c["name"] == check), None) for w in windows]
        charts.append(line_chart({"score": [c["score"] if c else None for c in found],
                                  "threshold": [c["threshold"] if c else None for c in found]},
                                 labels=labels, colors=["#1565c0", "#c62828"], dashed=["threshold"],
                                 marks=[bool(c and c["drifted"]) for c in found], title=check, width=400, height=150))
    breached = [w for w in windows if w["drifted"]][-15:]
    rows = ([short_time(w["start"]), short_time(w["end"]), e(w["model_version"]), str(w["n_predictions"]),
             ", ".join(f"<span class='bad'>{e(c['name'])}</span> {num(c['score'])} &gt; {num(c['threshold'])}"
                       for c in w["checks"] if c["drifted"]) or "-",
             e(w["streak"]), e(w["action"]), link(links.run(w["mlflow_run_id"]), "run + Evidently report")]
            for w in reversed(breached))
    last = windows[-1] if windows else None
    state = (f"latest window {short_time(last['end'])}: "
             + ("<span class='bad'>breached</span>" if last["drifted"] else "<span class='ok'>no drift</span>")
             + f", breaching streak {e(last['streak'] or 0)}, decision: {e(last['action'] or 'pending')}"
             if last else "no window measured yet")
    return (f"<section id='drift'><h2>Drift over time</h2><div class='sub'>{totals['windows']} windows "
            f"({short_time(totals['first'])} .. {short_time(totals['last'])}), <span class='bad'>{totals['breached']}"
            f" breached</span>, {totals['retrain']} led to a retrain; charts: latest {len(windows)}. "
            f"Hysteresis: {state}</div><div class='grid small'>{''.join(charts)}</div>"
            f"<h3>Breached windows (latest {len(breached)})</h3>"
            + table(["start", "end", "version", "answers", "checks over threshold", "streak", "action", "MLflow"],
                    rows, numeric=(3,)) + "</section>")


def quality_section(quality: Mapping[str, Any]) -> str:
    windows, live = quality["windows"], quality["live"]
    labels = [short_time(w["end"]) for w in windows]
    chart = line_chart({"accuracy": [w.get("accuracy") for w in windows], "F1": [w.get("f1") for w in windows]},
                       labels=labels, colors=["#2e7d32", "#1565c0"], y_max=1.0,
                       title="feedback accuracy / F1 per monitoring window")
    volume = bar_chart([w["n"] for w in windows], labels=labels, title="answers per window")
    labelled = bar_chart([w["labelled"] for w in windows], labels=labels, title="feedback labels per window",
                         color="#7986cb")
    rows = ([short_time(b["start"]), str(b["n"]), str(b["labelled"]), pct(b["accuracy"]), num(b["f1"]),
             num(b["precision"]), num(b["recall"])] for b in reversed(live["buckets"]))
    return (f"<section id='quality'><h2>Live quality</h2><div class='sub'>feedback labels on served answers: per "
            f"monitoring window as measured, and per hour since {short_time(live['since'])} from the prediction log"
            f"</div><div class='grid'>{chart}{volume}{labelled}</div><h3>Since the last window</h3>"
            + table(["hour", "answers", "labelled", "accuracy", "F1", "precision", "recall"], rows,
                    numeric=(1, 2, 3, 4, 5, 6)) + "</section>")


def _comparison(moves: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(metrics side by side, p-values) from the numbers a run's canary / promote move recorded."""
    metrics: dict[str, Any] = next((m["metrics"] for m in moves if m.get("metrics", {}).get("mcnemar") or
                    m.get("metrics", {}).get("challenger")), {})
    if not metrics:
        return "-", "-"
    champ, chall = metrics.get("champion") or {}, metrics.get("challenger") or {}
    side = "<br>".join(f"{k}: {num(champ.get(k))} &rarr; <b>{num(chall.get(k))}</b>" for k in ("f1", "accuracy", "ece"))
    mcnemar, boot = metrics.get("mcnemar") or {}, metrics.get("bootstrap") or {}
    p_values = (f"<span class='p-mcnemar'>McNemar p={pvalue(mcnemar.get('p_value'))}</span><br>"
                f"<span class='p-bootstrap'>bootstrap p={pvalue(boot.get('p_value'))}</span>")
    return side, p_values


def timeline_section(runs: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for r in runs:
        side, p_values = _comparison(r["moves"])
        trigger = r.get("trigger") or {}
        outcome = r["outcome"]
        klass = "ok" if outcome == "promoted" else "bad" if outcome in ("rejected", "withdrawn", "rolled back") else ""
        decision = next((m for m in reversed(r["moves"]) if m["alias"] in ("champion", "challenger")), None)
        reasons = (decision or {}).get("reasons") or [a["title"] for a in r["alerts"]]
        canary = next((m["metrics"].get("canary") for m in r["moves"] if (m.get("metrics") or {}).get("canary")), None)
        rows.append([short_time(r.get("start") or (r["moves"][0]["at"] if r["moves"] else None)),
                     link(airflow_run_href("retrain_compare_promote", r["run_id"]), r["run_id"], top=True)
                     + f"<div class='sub'>{e(r.get('state'))}</div>",
                     f"{e(trigger.get('source'))}: {e(trigger.get('reason'))}"
                     + reasons_list(trigger.get("drift") or []),
                     side, p_values, "-" if not canary else e(canary.get("status") or "recorded"),
                     f"<span class='{klass}'>{e(outcome)}</span>" + reasons_list(reasons)])
    return ("<section id='timeline'><h2>Retraining timeline</h2>"
            + table(["started", "run", "trigger", "champion → challenger", "p-values", "canary", "decision"],
                    rows) + "</section>")


def alerts_section(alerts: Mapping[str, Any]) -> str:
    counts = " ".join(f"<span class='tag {'bad' if c['severity'] == 'critical' else ''}'>{e(c['severity'])} "
                      f"{e(c['status'])}: {c['n']}</span>" for c in alerts["counts"])
    rows = ([short_time(a["at"]), e(a["severity"]), e(a["kind"]), e(a["title"]),
             f"<span class='{'ok' if a['delivered'] else 'bad'}'>{e(a['status'])}</span> via {e(a['transport'])}"
             + (f"<div class='sub'>{e(a['error'])}</div>" if a["error"] else ""),
             link(airflow_run_href(a["dag_id"], a["run_id"]), a["run_id"], top=True) if a["dag_id"] and a["run_id"]
             else "-"] for a in alerts["rows"])
    return (f"<section id='alerts'><h2>Alert log</h2><div class='sub'>last {alerts['days']:g} days: {counts or 'none'}"
            "</div>" + table(["when", "severity", "kind", "title", "delivered", "run"], rows) + "</section>")


def serving_section(serving: Mapping[str, Any]) -> str:
    routing = serving["routing"] or {"mode": "full (settings)"}
    canary = routing.get("canary_percent")
    rows = ([e(v["variant"]), f"v{e(v['version'])}", e(v["role"]), str(v["requests"]), pct(v["share"]),
             num(v["latency_ms"], 1), str(v["labelled"]), pct(v["error_rate"])] for v in serving["variants"])
    return (f"<section id='serving'><h2>Serving now</h2><div>routing <b>{e(routing.get('mode'))}</b>"
            + (f", canary {e(canary)} %" if canary is not None else "")
            + f" <span class='sub'>(since {short_time(serving['routing_updated_at'])})</span></div>"
            f"<div class='sub'>last {serving['minutes']:g} min: {serving['served']} served answers; error rate = "
            "labelled answers the feedback contradicts</div>"
            + table(["variant", "version", "role", "requests", "share", "latency ms", "labelled", "error rate"],
                    rows, numeric=(3, 4, 5, 6, 7)) + "</section>")


def overview_page(data: Mapping[str, Any], links: Links) -> str:
    nav = "<nav>" + "".join(f"<a href='#{key}'>{e(title)}</a>" for key, title in SECTIONS) + "</nav>"
    body = (nav + roles(data["aliases"], data["versions"], links) + versions_section(data["versions"], links)
            + drift_section(data["drift"], links) + quality_section(data["quality"])
            + timeline_section(data["timeline"]) + alerts_section(data["alerts"]) + serving_section(data["serving"]))
    return document("Model Ops", body, heading=f"Model Ops: {data['model_name']}",
                    sub=f"as of {short_time(data['now'])} UTC; JSON: <a href='api/overview'>api/overview</a>")


def run_tab(data: Mapping[str, Any], links: Links) -> str:
    """The tab on one DAG run: a retrain's comparison and canary, a monitoring window, a training's version."""
    kind, dag_id, run_id = data["kind"], data["dag_id"], data["run_id"]
    if kind == "retrain":
        body = timeline_section([data["run"]])
        moves = data["run"]["moves"]
        body += "<section><h2>Alias moves of this run</h2>" + table(
            ["when", "alias", "action", "from", "to", "reason"],
            ([short_time(m["at"]), e(m["alias"]), e(m["action"]), e(m["from_version"]), e(m["to_version"]),
              e(m["reason"]) + reasons_list(m["reasons"], 12)] for m in moves)) + "</section>"
    elif kind == "monitoring":
        w = data.get("window")
        if w is None:
            body = "<section><p>This run's window has not been measured.</p></section>"
        else:
            rows = ([e(c["name"]), num(c["score"], 4), num(c["threshold"], 4),
                     "<span class='bad'>breached</span>" if c["drifted"] else "<span class='ok'>ok</span>"]
                    for c in w["checks"])
            body = (f"<section><h2>Window {short_time(w['start'])} .. {short_time(w['end'])}</h2>"
                    f"<div>champion v{e(w['model_version'])}, {w['n_predictions']} answers, {w['n_labelled']} labelled;"
                    f" {'<span class=bad>drift</span>' if w['drifted'] else '<span class=ok>no drift</span>'}; "
                    f"streak {e(w['streak'])}; {e(w['action'])}</div>"
                    + table(["check", "score", "threshold", "verdict"], rows, numeric=(1, 2))
                    + reasons_list(w["decision_reasons"], 12)
                    + f"<p>{link(links.run(w['mlflow_run_id']), 'monitoring run and its Evidently report (MLflow)')}"
                      "</p></section>")
    elif kind == "training":
        v = data.get("version")
        body = ("<section><p>This run registered no version.</p></section>" if not v else
                f"<section><h2>Version v{e(v['version'])}</h2><div>family {e(v.get('family'))}, gates "
                f"{e(v.get('gates'))}, aliases {e(', '.join(v.get('aliases') or []) or 'none')}</div>"
                f"<div>{_metrics_cell(v)}</div><p>{link(links.version(v['version']), 'MLflow version')} &middot; "
                f"{link(links.run(v.get('run_id')), 'run: plots (confusion, ROC, PR, reliability), model card')}"
                "</p></section>")
    else:
        body = "<section><p>Model Ops shows nothing for this DAG.</p></section>"
    return document(f"Model Ops: {dag_id}", body, heading=f"Model Ops: {dag_id}", sub=e(run_id))
