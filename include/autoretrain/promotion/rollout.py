"""Compare, canary, promote, withdraw, roll back: the steps after a challenger is registered.

Each step takes the settings and JSON-able inputs and returns a JSON-able dict (typed in
:mod:`autoretrain.promotion.payloads`), so the same functions run as tasks of
``retrain_compare_promote`` / ``rollback`` and from ``autoretrain promote|rollback``. Every alias
move goes through :func:`autoretrain.registry.move_alias` (audited, all-or-nothing, replayed on
retry); routing changes go through the prediction service's override
(:func:`autoretrain.serving.prediction_log.save_routing`), which every service process polls.

Rollout: ``start_canary`` (``challenger`` alias + canary routing) -> ``canary_status`` until it is
``pass`` or ``fail`` -> ``promote_challenger`` (``champion`` moved, the old one recorded as
``previous``, routing back to full) or ``withdraw_challenger`` (routing full on the champion,
``challenger`` removed). ``rollback`` restores ``previous`` in one step. In ``promotion_mode=approve``
``hold_for_approval`` puts ``challenger`` on the version while a person decides
(:mod:`autoretrain.promotion.approval`); ``handed_over`` is the candidate of a run that compares a
version registered elsewhere (the weekly training, ``autoretrain train``) instead of training one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from autoretrain import lineage, registry, tracking
from autoretrain.audit import aliases
from autoretrain.config import Settings
from autoretrain.promotion import payloads
from autoretrain.promotion.canary import CanaryPolicy, check_canary
from autoretrain.promotion.decision import Policy, Scores, decide_promotion
from autoretrain.serving import access, prediction_log
from autoretrain.training.evaluation import compute_metrics
from autoretrain.training.payloads import RegisteredVersion

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------- compare
def compare_challenger(settings: Settings, *, parent_run_id: str, registered: RegisteredVersion,
                       force: bool = False) -> payloads.Comparison:
    """Score the champion on the challenger's hold-out and decide (gates, improvement, significance)."""
    from autoretrain.training import model_card
    from autoretrain.training.families import positive_proba

    client = tracking.client_for(settings)
    name, version = str(registered["name"]), str(registered["version"])
    scores = tracking.load_frame(client, parent_run_id, lineage.FRAME_HOLDOUT_SCORES)
    labels = scores["label"].to_numpy()
    champion_ref = registry.alias_version(client, name, registry.CHAMPION)
    champion = None
    if champion_ref is not None:  # the same version (a re-run after promotion): its own scores, a clear reject
        if champion_ref.version == version:
            proba = scores["proba"].to_numpy()
        else:
            model, _ = registry.load_trusted(settings, client, champion_ref.version, name=name)
            proba = positive_proba(model, scores, settings.positive_label)
        champion = Scores(champion_ref.version, labels, proba)
    decision = decide_promotion(champion, Scores(version, labels, scores["proba"].to_numpy()),
                                Policy.from_settings(settings, force=force))
    result: payloads.Comparison = {**decision.as_dict(), "name": name, "version": version,
                                   "champion_version": champion_ref.version if champion_ref else None,
                                   "by_origin": _by_origin(settings, scores, champion)}
    tracking.log_json(client, parent_run_id, result, lineage.COMPARISON)
    client.set_model_version_tag(name, version, lineage.DECISION, "promote" if decision.promote else "reject")
    client.set_model_version_tag(name, version, lineage.GATES,
                                 "passed" if decision.numbers["checks"]["gates"] else "failed")
    metrics = client.get_run(parent_run_id).data.metrics
    holdout = {k.removeprefix("holdout_"): v for k, v in metrics.items() if k.startswith("holdout_")}
    model_card.publish(settings, client, registered=registered, parent_run_id=parent_run_id, metrics=holdout,
                       comparison=decision.as_dict())
    for reason in decision.reasons:
        log.info("comparison: %s", reason)
    return result


def _by_origin(settings: Settings, scores: Any, champion: Scores | None) -> dict[str, payloads.OriginScores]:
    """Both models' metrics on each part of the hold-out (base hold-out, labelled traffic)."""
    if "origin" not in scores.columns:
        return {}
    out: dict[str, payloads.OriginScores] = {}
    labels = scores["label"].to_numpy()
    for origin in sorted(scores["origin"].unique()):
        mask = (scores["origin"] == origin).to_numpy()
        part: payloads.OriginScores = {"n": int(mask.sum())}
        part["challenger"] = _part_metrics(settings, labels[mask], scores["proba"].to_numpy()[mask])
        if champion is not None:
            part["champion"] = _part_metrics(settings, labels[mask], np.asarray(champion.proba)[mask])
        out[str(origin)] = part
    return out


def _part_metrics(settings: Settings, labels: np.ndarray, proba: np.ndarray) -> dict[str, float | None]:
    """Accuracy, F1, recall and FPR on one part of the hold-out (None where undefined on it)."""
    m = compute_metrics(labels, proba, positive_label=settings.positive_label, threshold=settings.decision_threshold)
    return {k: (None if np.isnan(m[k]) else m[k]) for k in ("accuracy", "f1", "recall", "fpr")}


# -------------------------------------------------------------------------------------- canary
def start_canary(settings: Settings, *, version: str, run_id: str, actor: str, reasons: Sequence[str] = (),
                 metrics: Mapping[str, Any] | None = None, now: datetime | None = None) -> payloads.CanaryStart:
    """``challenger`` alias on ``version`` (audited), then canary routing at ``canary_percent``."""
    client = tracking.client_for(settings)
    champion = registry.alias_version(client, settings.model_name, registry.CHAMPION)
    if champion is None:
        raise registry.RegistryError(f"model {settings.model_name!r} has no champion: there is nothing to run a "
                                     "canary against; promote the first model directly (canary_minutes=0)")
    started = now or datetime.now(UTC)  # wall clock on purpose: the window is about live traffic
    with aliases.engine_for(settings) as engine:
        move = registry.move_alias(client, engine, name=settings.model_name, alias=registry.CHALLENGER,
                                   version=version, actor=actor, run_id=run_id, action="canary",
                                   reason=f"canary at {settings.canary_percent} % for {settings.canary_minutes} min",
                                   reasons=reasons, metrics=metrics)
        routing: payloads.CanaryRouting = {"mode": "canary", "canary_percent": float(settings.canary_percent)}
        prediction_log.save_routing(engine, routing, at=started)
    log.info("canary: version %s answers %s %% of users (champion %s) from %s for %d min", version,
             settings.canary_percent, champion.version, started.isoformat(), settings.canary_minutes)
    return {"name": settings.model_name, "version": version, "champion_version": champion.version,
            "started_at": started.isoformat(), "canary_percent": settings.canary_percent,
            "canary_minutes": settings.canary_minutes, "routing": routing, "move": move.as_dict()}


def canary_status(settings: Settings, *, canary: payloads.CanaryStart,
                  now: datetime | None = None) -> payloads.CanaryReading:
    """The canary verdict so far: the window's served rows, the champion replayed on the challenger's."""
    now = now or datetime.now(UTC)
    started = datetime.fromisoformat(str(canary["started_at"]))
    since = started + timedelta(seconds=settings.canary_grace_seconds)
    with aliases.engine_for(settings) as engine:
        rows = prediction_log.served_between(engine, model_name=settings.model_name, since=since, until=now)
    champion_version = str(canary["champion_version"])
    answered = [r for r in rows if r["variant"] == registry.CHALLENGER and str(r["model_version"]) == canary["version"]]
    verdict = check_canary(rows, challenger_version=str(canary["version"]), champion_version=champion_version,
                           champion_labels=_replay(settings, champion_version, answered),
                           policy=CanaryPolicy.from_settings(access.with_routing_salt(settings)),
                           window_complete=now >= started + timedelta(minutes=float(canary["canary_minutes"])))
    for reason in verdict.reasons:
        log.info("canary: %s", reason)
    return {**verdict.as_dict(), "since": since.isoformat(), "until": now.isoformat()}


def _replay(settings: Settings, version: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The label the champion ``version`` gives each message the challenger answered."""
    if not rows:
        return {}
    from autoretrain.training.families import positive_proba
    from autoretrain.training.steps import as_frame

    model, _ = registry.load_trusted(settings, tracking.client_for(settings), version)
    proba = positive_proba(model, as_frame([r["text"] for r in rows]), settings.positive_label)
    return {r["request_id"]: settings.positive_label if p >= settings.decision_threshold else settings.negative_label
            for r, p in zip(rows, proba, strict=True)}


# ---------------------------------------------------------------------------------- promotion
def promote_challenger(settings: Settings, *, version: str, run_id: str, actor: str, reasons: Sequence[str] = (),
                       metrics: Mapping[str, Any] | None = None, now: datetime | None = None) -> payloads.Promotion:
    """``champion`` -> ``version`` (the old one becomes ``previous``); a canary routing ends (full); no challenger."""
    client = tracking.client_for(settings)
    name = settings.model_name
    with aliases.engine_for(settings) as engine:
        move = registry.move_alias(client, engine, name=name, alias=registry.CHAMPION, version=version,
                                   actor=actor, run_id=run_id, action="promote", previous="record",
                                   reason=reasons[-1] if reasons else "promoted", reasons=reasons, metrics=metrics)
        override = prediction_log.load_routing(engine)
        canary = override is not None and override.get("mode") == "canary"
        if canary:  # both variants serve the same version now; back to one
            prediction_log.save_routing(engine, {"mode": "full"}, at=now or datetime.now(UTC))
        retired = _retire_challenger(client, engine, name=name, version=version, actor=actor, run_id=run_id)
    previous = next((c["from_version"] for c in move.changes if c["alias"] == registry.CHAMPION), None)
    return {"name": name, "version": version, "previous_version": previous, "move": move.as_dict(),
            "challenger_removed": retired, "routing": "full" if canary else "unchanged"}


def _retire_challenger(client: Any, engine: Any, *, name: str, version: str, actor: str, run_id: str) -> bool:
    """Remove ``challenger`` when it points at the version just promoted (it is the champion now)."""
    current = registry.alias_version(client, name, registry.CHALLENGER)
    if current is None or current.version != version:
        return False
    registry.move_alias(client, engine, name=name, alias=registry.CHALLENGER, version=None, actor=actor,
                        run_id=run_id, action="promote", reason=f"version {version} is the champion now")
    return True


def withdraw_challenger(settings: Settings, *, version: str, run_id: str, actor: str, reasons: Sequence[str] = (),
                        metrics: Mapping[str, Any] | None = None, now: datetime | None = None,
                        end_canary: bool = True, decision: str = "withdrawn after canary") -> payloads.Withdrawal:
    """Take ``challenger`` off ``version``: a failed canary (routing full on the champion first), or an approval
    that was refused or never came (``end_canary=False`` when no canary ran: the routing is left alone)."""
    client = tracking.client_for(settings)
    name = settings.model_name
    with aliases.engine_for(settings) as engine:
        if end_canary:
            prediction_log.save_routing(engine, {"mode": "full"}, at=now or datetime.now(UTC))  # users first
        current = registry.alias_version(client, name, registry.CHALLENGER)
        move = None
        if current is not None and current.version == version:
            move = registry.move_alias(client, engine, name=name, alias=registry.CHALLENGER, version=None,
                                       actor=actor, run_id=run_id, action="withdraw",
                                       reason=reasons[-1] if reasons else "canary failed", reasons=reasons,
                                       metrics=metrics)
    champion = registry.alias_version(client, name, registry.CHAMPION)
    client.set_model_version_tag(name, version, lineage.DECISION, decision)
    return {"name": name, "version": version, "champion_version": champion.version if champion else None,
            "move": move.as_dict() if move else None, "routing": "full" if end_canary else "unchanged"}


# ----------------------------------------------------------------------------------- approval
def hold_for_approval(settings: Settings, *, version: str, run_id: str, actor: str, reasons: Sequence[str] = (),
                      metrics: Mapping[str, Any] | None = None) -> payloads.AliasMoveRecord | None:
    """``challenger`` on ``version`` while a person decides (audited); None when a canary already put it there.

    The version under review is the challenger: serving's shadow/A-B modes see it as such, and the
    answer (promote, or withdraw with the reviewer's comment) is recorded as the next move of that alias.
    """
    client = tracking.client_for(settings)
    current = registry.alias_version(client, settings.model_name, registry.CHALLENGER)
    if current is not None and current.version == version:
        return None
    with aliases.engine_for(settings) as engine:
        move = registry.move_alias(client, engine, name=settings.model_name, alias=registry.CHALLENGER,
                                   version=version, actor=actor, run_id=run_id, action="approval",
                                   reason=f"awaiting approval (promotion_mode=approve, timeout "
                                          f"{settings.approval_timeout_hours:g} h)", reasons=reasons, metrics=metrics)
    return move.as_dict()


# ---------------------------------------------------------------------------------- hand-over
class NotAHandOver(registry.RegistryError):
    """The version handed to a rollout cannot be compared: unknown, or not trained by AutoRetrain."""


def handed_over(settings: Settings, *, version: str) -> payloads.Candidate:
    """The candidate of a rollout run given a registered ``version`` (Param ``version``): its hold-out run.

    ``version`` comes from a run's conf (untrusted): it must be digits, a version of ``model_name``,
    and carry the parent run that holds its hold-out scores (every AutoRetrain training sets it).
    """
    if not str(version).isdigit():
        raise NotAHandOver(f"version {version!r} is not a version number")
    client = tracking.client_for(settings)
    ref = registry.get_version(client, settings.model_name, str(version))
    parent = ref.tags.get(lineage.PARENT_RUN_ID)
    if not parent:
        raise NotAHandOver(f"version {ref.version} of {settings.model_name!r} has no {lineage.PARENT_RUN_ID} tag: "
                           "it was not trained by AutoRetrain, so there is no hold-out to compare it on")
    log.info("rollout of version %s (registered by %s/%s), hold-out of run %s", ref.version,
             ref.tags.get(lineage.AIRFLOW_DAG_ID) or "cli", ref.tags.get(lineage.AIRFLOW_RUN_ID) or "?", parent)
    return {"parent_run_id": parent, "registered": ref.as_dict(), "handed_over": True}


def rollback(settings: Settings, *, run_id: str, actor: str, reason: str, to_version: str | None = None,
             now: datetime | None = None) -> payloads.Rollback:
    """Champion back to ``previous`` (or ``to_version``) in one audited step; routing full on it."""
    client = tracking.client_for(settings)
    with aliases.engine_for(settings) as engine:
        move = registry.rollback_champion(client, engine, name=settings.model_name, actor=actor, reason=reason,
                                          run_id=run_id, to_version=to_version)
        prediction_log.save_routing(engine, {"mode": "full"}, at=now or datetime.now(UTC))
    changes = {c["alias"]: c for c in move.changes}
    champion = changes[registry.CHAMPION]
    log.warning("rolled %s back: champion %s -> %s (%s)", settings.model_name, champion["from_version"],
                champion["to_version"], reason)
    return {"name": settings.model_name, "from_version": champion["from_version"],
            "to_version": champion["to_version"], "move": move.as_dict(), "replayed": move.replayed}
