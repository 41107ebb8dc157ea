"""Model cards: one markdown page per registered version (data, metrics with intervals, gates,
comparison, limitations), logged to MLflow.

:func:`render` is pure; :func:`publish` gathers its inputs from the version's runs and logs
``model_card.md`` to the version's run and the parent run, and puts it in the version's
description (what the MLflow UI shows on the version page). ``register_model`` publishes a card
for every version; the comparison step of ``retrain_compare_promote`` publishes it again with the
champion/challenger decision. Publishing twice overwrites: a retried task leaves one card.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mlflow.tracking import MlflowClient

from autoretrain import lineage, tracking
from autoretrain.config import Settings
from autoretrain.promotion.payloads import DecisionRecord
from autoretrain.promotion.stats import metric_intervals
from autoretrain.training.evaluation import check_gates, compute_metrics
from autoretrain.training.payloads import GateVerdict, HoldoutMetrics, RegisteredVersion

log = logging.getLogger(__name__)

#: MLflow's SQL store holds at most 5000 characters of a version description
DESCRIPTION_LIMIT = 5000
CARD_METRICS = ("accuracy", "precision", "recall", "f1", "mcc", "fpr", "ece", "roc_auc", "pr_auc", "brier")


@dataclass(frozen=True)
class CardInputs:
    """Everything a card shows (all plain values)."""

    name: str
    version: str
    family: str
    trained_by: str  # "<dag_id>/<run_id>"
    positive_label: str
    threshold: float
    data: Mapping[str, Any]  # source, digests, row counts, feedback counts
    metrics: Mapping[str, float]
    intervals: Mapping[str, tuple[float, float]]
    interval_samples: int
    gates: GateVerdict
    by_origin: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # base / feedback hold-out
    comparison: DecisionRecord | None = None


def render(card: CardInputs) -> str:
    """The card as markdown."""
    lines = [f"# Model card: {card.name} version {card.version}", "",
             f"{card.family} on TF-IDF word and character n-grams; trained by `{card.trained_by}`. "
             f"Predicts `{card.positive_label}` when P({card.positive_label}) >= {card.threshold:g}.", ""]
    lines += _data_section(card.data)
    lines += _metrics_section(card)
    lines += ["## Gates", "", f"**{'passed' if card.gates.get('passed') else 'FAILED'}**", "",
              *(f"- {r}" for r in card.gates.get("reasons", [])), ""]
    lines += _comparison_section(card.comparison)
    lines += _limitations(card)
    return "\n".join(lines).rstrip() + "\n"


def _data_section(data: Mapping[str, Any]) -> list[str]:
    rows = [("source", data.get("source")), ("data digest (base + feedback)", _short(data.get("digest"))),
            ("base digest", _short(data.get("base_digest"))), ("feedback digest", _short(data.get("feedback_digest"))),
            ("rows read", data.get("rows_raw")), ("rows after de-duplication", data.get("rows_deduplicated")),
            ("training rows", data.get("rows_train")), ("hold-out rows", data.get("rows_test")),
            ("labelled traffic in training", data.get("rows_feedback_train")),
            ("labelled traffic in the hold-out", data.get("rows_feedback_test"))]
    out = ["## Data", "", "| | |", "|---|---|"]
    out += [f"| {k} | {_fmt(v)} |" for k, v in rows if v not in (None, "")]
    return [*out, ""]


def _metrics_section(card: CardInputs) -> list[str]:
    out = ["## Hold-out metrics", "",
           f"95 % intervals: percentile bootstrap over the hold-out ({card.interval_samples} resamples).", "",
           "| metric | value | 95 % interval |", "|---|---|---|"]
    for name in CARD_METRICS:
        if name in card.metrics:
            low_high = card.intervals.get(name)
            interval = f"[{low_high[0]:.4f}, {low_high[1]:.4f}]" if low_high else "-"
            out.append(f"| {name} | {_fmt(card.metrics[name])} | {interval} |")
    counts = {k: card.metrics[k] for k in ("tp", "fp", "fn", "tn") if k in card.metrics}
    if len(counts) == 4:
        out += ["", "Confusion counts: " + ", ".join(f"{k} {int(v)}" for k, v in counts.items())]
    if card.by_origin:
        out += ["", "| hold-out part | rows | accuracy | f1 | fpr |", "|---|---|---|---|---|"]
        for origin, m in card.by_origin.items():
            out.append(f"| {origin} | {int(m['n'])} | {_fmt(m['accuracy'])} | {_fmt(m['f1'])} | {_fmt(m['fpr'])} |")
    return [*out, ""]


def _comparison_section(comparison: DecisionRecord | None) -> list[str]:
    if comparison is None:
        return ["## Comparison", "", "Not compared with a champion yet (the training DAG registers; "
                "`retrain_compare_promote` compares).", ""]
    numbers = comparison.get("numbers", {})
    verdict = "promote" if comparison.get("promote") else "reject"
    out = ["## Comparison with the champion", "", f"**{verdict}**" + (" (forced)" if numbers.get("forced") else ""),
           ""]
    champion = numbers.get("champion")
    if champion:
        out += [f"On the same {numbers.get('n')} hold-out messages:", "",
                f"| metric | champion v{champion.get('version')} | this version | difference |", "|---|---|---|---|"]
        challenger = numbers.get("challenger", {})
        for name in ("accuracy", "f1", "mcc", "fpr", "ece"):
            delta = (numbers.get("delta") or {}).get(name)
            out.append(f"| {name} | {_fmt(champion.get(name))} | {_fmt(challenger.get(name))} | "
                       f"{'-' if delta is None else f'{delta:+.4f}'} |")
        out.append("")
    out += [f"- {r}" for r in comparison.get("reasons", [])]
    return [*out, ""]


def _limitations(card: CardInputs) -> list[str]:
    n = card.metrics.get("n")
    width = card.intervals.get("f1")
    out = ["## Limitations", "",
           "- Trained on English SMS (the 2012 UCI SMS Spam Collection) and the labelled traffic above; other "
           "languages, channels (e-mail, chat) and newer spam styles are not represented.",
           f"- One decision threshold ({card.threshold:g}); precision and recall move against each other if it "
           "is changed, and the gates were checked at this threshold only."]
    if n is not None and width is not None:
        out.append(f"- The hold-out has {int(n)} messages: F1 is known to about +/-{(width[1] - width[0]) / 2:.3f}; "
                   "smaller differences between models are noise.")
    out += ["- Calibration (ECE, 15 bins) is measured on the hold-out; probabilities on shifted traffic may be "
            "less reliable.",
            "- Labelled traffic reflects what users chose to report: it over-represents disputed messages.",
            "- Not a security control: adversarial spam written to evade it is not measured here."]
    return [*out, ""]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if not np.isfinite(value) else f"{value:.4f}"
    return "n/a" if value is None else str(value)


def _short(digest: Any) -> str | None:
    return f"`{str(digest)[:16]}`" if digest else None


# ------------------------------------------------------------------------------------------- I/O
def gather(settings: Settings, client: MlflowClient, *, registered: RegisteredVersion, parent_run_id: str,
           metrics: Mapping[str, float], comparison: DecisionRecord | None = None) -> CardInputs:
    """The card's inputs from the parent run (data, hold-out scores) and the registered version."""

    parent = client.get_run(parent_run_id)
    tags, run_metrics = parent.data.tags, parent.data.metrics
    scores = tracking.load_frame(client, parent_run_id, lineage.FRAME_HOLDOUT_SCORES)
    positive = scores["label"].to_numpy() == settings.positive_label
    intervals = metric_intervals(positive, scores["proba"].to_numpy(), threshold=settings.decision_threshold,
                                 samples=settings.bootstrap_samples, seed=settings.random_seed)
    by_origin: dict[str, HoldoutMetrics] = {}
    if "origin" in scores.columns and scores["origin"].nunique() > 1:
        for origin, part in scores.groupby("origin"):
            by_origin[str(origin)] = compute_metrics(part["label"], part["proba"],
                                                     positive_label=settings.positive_label,
                                                     threshold=settings.decision_threshold)
    data: dict[str, str | int | None] = {
        "source": tags.get(lineage.DATA_SOURCE), "digest": tags.get(lineage.DATA_DIGEST),
        "base_digest": tags.get(lineage.BASE_DIGEST), "feedback_digest": tags.get(lineage.FEEDBACK_DIGEST),
        **{k: int(run_metrics[k]) for k in ("rows_raw", "rows_deduplicated", "rows_train", "rows_test",
                                            "rows_feedback_train", "rows_feedback_test") if k in run_metrics}}
    gates = check_gates(metrics, accuracy_min=settings.accuracy_min, f1_min=settings.f1_min,
                        ece_max=settings.ece_max)
    return CardInputs(name=str(registered["name"]), version=str(registered["version"]),
                      family=tags.get(lineage.SELECTED_FAMILY, "?"),
                      trained_by=f"{tags.get(lineage.AIRFLOW_DAG_ID, '?')}/{tags.get(lineage.AIRFLOW_RUN_ID, '?')}",
                      positive_label=settings.positive_label, threshold=settings.decision_threshold, data=data,
                      metrics=dict(metrics), intervals=intervals, interval_samples=settings.bootstrap_samples,
                      gates=gates.as_dict(), by_origin=by_origin, comparison=comparison)


def publish(settings: Settings, client: MlflowClient, *, registered: RegisteredVersion, parent_run_id: str,
            metrics: Mapping[str, float], comparison: DecisionRecord | None = None) -> str:
    """Render the card and log it to the version's run, the parent run and the version description."""
    card = gather(settings, client, registered=registered, parent_run_id=parent_run_id, metrics=metrics,
                  comparison=comparison)
    text = render(card)
    name, version = str(registered["name"]), str(registered["version"])
    for metric in ("accuracy", "f1", "mcc", "ece", "fpr"):  # the Model Ops page shows them without the card
        if metric in card.intervals:
            low, high = card.intervals[metric]
            client.set_model_version_tag(name, version, f"{lineage.INTERVAL_PREFIX}{metric}", f"{low:.6f} {high:.6f}")
    for run_id in {str(registered["run_id"]), parent_run_id}:
        client.log_text(run_id, text, lineage.MODEL_CARD_FILE)
    cut = f"\n\n... (cut; the full card is {lineage.MODEL_CARD_FILE} in run {registered['run_id']})\n"
    description = text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - len(cut)] + cut
    client.update_model_version(name, version, description=description)
    card_uri = f"runs:/{registered['run_id']}/{lineage.MODEL_CARD_FILE}"
    client.set_model_version_tag(name, version, lineage.MODEL_CARD, card_uri)
    log.info("model card of %s version %s: %d characters", name, version, len(text))
    return text
