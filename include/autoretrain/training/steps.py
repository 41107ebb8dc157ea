"""The training lifecycle as steps: load -> validate -> train (per family) -> select -> evaluate ->
register -> gate -> alias.

Each step takes the settings and JSON-able inputs and returns a JSON-able dict (typed in
:mod:`autoretrain.training.payloads`), so the same functions run as Airflow tasks (passing results
through XCom) and from ``autoretrain train``.
Intermediate data lives in the parent MLflow run (``data/*.parquet``), so any worker can pick a
step up, and every step is keyed by the run so that a retry finds its work instead of redoing it.

The ``retrain_compare_promote`` DAG runs the same steps with ``load_data(..., feedback_until=...)``:
the labelled traffic of the prediction log joins the base dataset (see
:mod:`autoretrain.data.challenger`), and ``validate_data`` splits it by text hash into training and
the hold-out. Every registered version gets a model card (:mod:`autoretrain.training.model_card`); aliases
move only through :func:`autoretrain.registry.move_alias` (audited).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import metadata

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.data.pandas_dataset import from_pandas
from mlflow.entities import Run
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from autoretrain import lineage, registry, tracking
from autoretrain.audit import aliases
from autoretrain.config import Settings
from autoretrain.data.challenger import assemble
from autoretrain.data.payloads import FeedbackSummary
from autoretrain.data.prepare import deduplicate, split
from autoretrain.data.sources import SourcePolicy, frame_digest, read_dataset, redact_uri
from autoretrain.data.validation import (
    check_empty_texts,
    check_pii,
    check_schema,
    check_split_leakage,
    validate_frame,
)
from autoretrain.db.engine import database_url
from autoretrain.db.migrate import checked_engine
from autoretrain.serving import prediction_log
from autoretrain.training.evaluation import check_gates, compute_metrics, select_best
from autoretrain.training.families import get_family, positive_proba, search_family
from autoretrain.training.payloads import (
    AliasAssignment,
    FamilyResult,
    GateVerdict,
    HoldoutMetrics,
    LoadedData,
    RegisteredVersion,
    SelectedModel,
    TrainingAlias,
    TrainingResult,
    ValidatedData,
)

log = logging.getLogger(__name__)

#: packages a served model needs, pinned to what trained it (explicit: MLflow's inference costs ~5 s)
MODEL_REQUIREMENTS = ("mlflow", "scikit-learn", "numpy", "scipy", "pandas", "skops")
#: MLflow saves sklearn models with skops (no arbitrary pickle); these sklearn-internal types are safe
#: what the MLmodel of a logged model lists for MLflow's own loader (other tools); AutoRetrain never reads
#: it back: its loads use registry.PROJECT_TRUSTED
SKOPS_TRUSTED_TYPES = ("sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration")
#: checks on labelled traffic before it joins training; repeats are de-duplicated, not rejected
FEEDBACK_GATE = (check_schema, check_empty_texts, check_pii)


@dataclass(frozen=True)
class RunKey:
    """Identifies one training run: the Airflow ``dag_id`` and ``run_id`` (or ``cli`` and a stamp)."""

    dag_id: str
    run_id: str

    def __str__(self) -> str:
        return f"{self.dag_id}/{self.run_id}"


def _client(settings: Settings) -> tuple[MlflowClient, str]:
    client = tracking.client_for(settings)
    return client, tracking.ensure_experiment(client, settings.experiment_name)


# ------------------------------------------------------------------------------------------ steps
def load_data(settings: Settings, key: RunKey, *, feedback_until: datetime | None = None) -> LoadedData:
    """Read the configured source and snapshot it into the parent run of ``key``.

    With ``feedback_until``, the labelled traffic of the prediction log (feedback recorded in the
    ``retention_days`` before it) is snapshotted too, and the run's data digest covers both.
    """
    client, experiment_id = _client(settings)
    parent = tracking.find_or_create_run(
        client, experiment_id, run_key=str(key), run_name=f"{key.dag_id} {key.run_id}",
        tags={lineage.AIRFLOW_DAG_ID: key.dag_id, lineage.AIRFLOW_RUN_ID: key.run_id, lineage.STAGE: "training"})
    with tracking.run_closed(client, parent):
        return _snapshot_sources(settings, client, parent, feedback_until=feedback_until)


def _snapshot_sources(settings: Settings, client: MlflowClient, parent: str, *,
                      feedback_until: datetime | None) -> LoadedData:
    uri = settings.resolved_data_uri()
    dataset = read_dataset(uri, labels=settings.labels, text_column=settings.text_column,
                           label_column=settings.label_column, policy=SourcePolicy.from_settings(settings))
    tracking.log_frame(client, parent, dataset.frame, lineage.FRAME_RAW)
    for name, value in settings.public().items():  # secrets masked, URL passwords too
        client.log_param(parent, f"settings.{name}", str(value)[:500])
    client.set_tag(parent, lineage.DATA_SOURCE, redact_uri(uri))
    result: LoadedData = {"parent_run_id": parent, "source": redact_uri(uri), "digest": dataset.digest,
                          "rows": len(dataset)}
    if feedback_until is not None:
        feedback = labelled_feedback(settings, until=feedback_until)
        tracking.log_frame(client, parent, feedback, lineage.FRAME_FEEDBACK)
        both = pd.concat([dataset.frame[["label", "text"]], feedback[["label", "text"]]], ignore_index=True)
        result["base_digest"], result["digest"] = dataset.digest, frame_digest(both)
        result["feedback_rows"], result["feedback_digest"] = len(feedback), frame_digest(feedback)
        client.set_tag(parent, lineage.BASE_DIGEST, result["base_digest"])
        client.set_tag(parent, lineage.FEEDBACK_DIGEST, result["feedback_digest"])
        client.set_tag(parent, lineage.FEEDBACK_ROWS, str(len(feedback)))
    client.set_tag(parent, lineage.DATA_DIGEST, result["digest"])
    return result


def labelled_feedback(settings: Settings, *, until: datetime) -> pd.DataFrame:
    """Labelled traffic of ``settings.model_name``: feedback recorded in the ``retention_days`` up to ``until``."""
    engine = checked_engine(database_url(settings))
    try:
        rows = prediction_log.labelled_predictions(engine, model_name=settings.model_name, until=until,
                                                   since=until - timedelta(days=settings.retention_days))
    finally:
        engine.dispose()
    columns = ["label", "text", "request_id", "model_version", "labelled_at"]
    frame = pd.DataFrame([{c: r[c] for c in columns} for r in rows], columns=columns)
    frame["labelled_at"] = pd.to_datetime(frame["labelled_at"], utc=True)
    log.info("%d labelled prediction(s) of %s up to %s", len(frame), settings.model_name, until.isoformat())
    return frame


def validate_data(settings: Settings, *, parent_run_id: str) -> ValidatedData:
    """Check the snapshot (blocking failures raise), de-duplicate, split, and log both sides."""
    client, _ = _client(settings)
    raw = tracking.load_frame(client, parent_run_id, lineage.FRAME_RAW)
    source = client.get_run(parent_run_id).data.tags.get(lineage.DATA_SOURCE, "snapshot")
    report = validate_frame(raw, settings, source=source)
    tracking.log_json(client, parent_run_id, report.as_dict(), lineage.VALIDATION_REPORT)
    for check in report.checks:
        client.log_metric(parent_run_id, f"check_{check.name}", check.score)
    report.raise_for_failures()  # a broken dataset never reaches training
    deduped, dedup = deduplicate(raw)
    train, test = split(deduped, test_size=settings.test_size, seed=settings.random_seed)
    feedback = None
    with_feedback = _with_feedback(settings, client, parent_run_id, train, test)
    if with_feedback is not None:
        train, test, feedback = with_feedback
    leakage = check_split_leakage(train, test)
    if not leakage.passed:  # cannot happen after de-duplication; guard the invariant anyway
        raise RuntimeError(f"split leakage: {leakage.details}")
    tracking.log_frame(client, parent_run_id, train, lineage.FRAME_TRAIN)
    tracking.log_frame(client, parent_run_id, test, lineage.FRAME_TEST)
    digests = {"train": frame_digest(train), "test": frame_digest(test)}
    with mlflow.start_run(run_id=parent_run_id), warnings.catch_warnings():
        # MLflow registers two identical local-file source classes and warns that a path is ambiguous
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        for context, frame in (("training", train), ("evaluation", test)):
            name = "train" if context == "training" else "test"
            mlflow.log_input(from_pandas(frame, source=source, targets="label", name=f"{settings.model_name}-{name}",
                                         digest=digests[name][:16]), context=context)
        mlflow.log_metrics({"rows_raw": len(raw), "rows_deduplicated": len(deduped),
                            "rows_train": len(train), "rows_test": len(test)})
    result: ValidatedData = {"train_rows": len(train), "test_rows": len(test), "train_digest": digests["train"],
                             "test_digest": digests["test"], "dedup": dedup.as_dict(),
                             "checks": report.as_dict()["checks"]}
    if feedback is not None:
        result["feedback"] = feedback
    return result


def _with_feedback(settings: Settings, client: MlflowClient, parent_run_id: str, train: pd.DataFrame,
                   test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, FeedbackSummary] | None:
    """The base split plus the run's labelled traffic, checked first: (train, test, summary); None without any."""
    if lineage.FEEDBACK_ROWS not in client.get_run(parent_run_id).data.tags:
        return None
    feedback = tracking.load_frame(client, parent_run_id, lineage.FRAME_FEEDBACK)
    if len(feedback):
        report = validate_frame(feedback[["label", "text"]], settings, source="prediction feedback",
                                checks=FEEDBACK_GATE)
        tracking.log_json(client, parent_run_id, report.as_dict(), lineage.FEEDBACK_VALIDATION_REPORT)
        report.raise_for_failures()  # a label outside the label set never reaches training
    train, test, summary = assemble(train, test, feedback, test_size=settings.test_size,
                                    salt=f"autoretrain-holdout-{settings.random_seed}")
    tracking.log_json(client, parent_run_id, summary.as_dict(), lineage.FEEDBACK_SUMMARY)
    client.log_metric(parent_run_id, "rows_feedback_train", summary.rows_train)
    client.log_metric(parent_run_id, "rows_feedback_test", summary.rows_test)
    return train, test, summary.as_dict()


def train_family(settings: Settings, *, parent_run_id: str, family: str) -> FamilyResult:
    """Search, calibrate and fit one family in a child run; log its CV metrics and pipeline."""
    get_family(family)  # fail fast on an unknown name
    client, experiment_id = _client(settings)
    parent = client.get_run(parent_run_id)
    run_key = f"{parent.data.tags[lineage.RUN_KEY]}/{family}"
    run_id = tracking.find_or_create_run(client, experiment_id, run_key=run_key, run_name=family,
                                         tags={lineage.FAMILY: family}, parent_run_id=parent_run_id)
    done = client.get_run(run_id)
    if lineage.MODEL_URI in done.data.tags:  # a retry after success: reuse
        log.info("family %s already trained in run %s", family, run_id)
        return _family_summary(done)
    with tracking.run_closed(client, run_id):  # a failed search leaves a FAILED run, not a RUNNING one
        train = tracking.load_frame(client, parent_run_id, lineage.FRAME_TRAIN)
        result = search_family(family, train, positive_label=settings.positive_label, cv_folds=settings.cv_folds,
                               seed=settings.random_seed, threshold=settings.decision_threshold)
    example = train[["text"]].head(3)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_params({"family": family, "calibration": result.calibration, "cv_folds": settings.cv_folds,
                           **{f"clf.{k}": v for k, v in result.params.items()}})
        mlflow.log_metrics({f"cv_{k}": float(v) for k, v in result.cv_metrics.items()})
        mlflow.log_metric("fit_seconds", result.fit_seconds)
        registry.quiet_skops_import()
        with _no_serving_input_check_warning():
            info = mlflow.sklearn.log_model(
                result.pipeline, name="model", input_example=example,
                signature=infer_signature(example, result.pipeline.predict(example)),
                pip_requirements=pinned_requirements(), skops_trusted_types=list(SKOPS_TRUSTED_TYPES))
        mlflow.set_tag(lineage.MODEL_URI, info.model_uri)
    return _family_summary(client.get_run(run_id))


def _family_summary(run: Run) -> FamilyResult:
    metrics = {k.removeprefix("cv_"): v for k, v in run.data.metrics.items() if k.startswith("cv_")}
    return {"family": run.data.tags[lineage.FAMILY], "run_id": run.info.run_id,
            "model_uri": run.data.tags[lineage.MODEL_URI], "cv_metrics": metrics,
            "params": dict(run.data.params)}


def select_model(settings: Settings, *, parent_run_id: str,
                 results: Sequence[FamilyResult | None]) -> SelectedModel:
    """Pick the best family by CV ``target_metric`` (tie-break ``tie_break_metric``)."""
    trained = [r for r in results if r]  # mapped tasks return lists; tolerate None from skipped ones
    selection = select_best({r["family"]: r["cv_metrics"] for r in trained}, metric=settings.target_metric,
                            tie_break=settings.tie_break_metric)
    winner = next(r for r in trained if r["family"] == selection.winner)
    client, _ = _client(settings)
    client.set_tag(parent_run_id, lineage.SELECTED_FAMILY, selection.winner)
    tracking.log_json(client, parent_run_id, {"ranking": selection.ranking, "reasons": selection.reasons},
                      lineage.SELECTION)
    for reason in selection.reasons:
        log.info("selection: %s", reason)
    return {**winner, "reasons": selection.reasons, "ranking": selection.ranking}


def evaluate_model(settings: Settings, *, parent_run_id: str, selected: SelectedModel) -> HoldoutMetrics:
    """Hold-out metrics and plots of the selected model, logged to its run and the parent run."""
    client, _ = _client(settings)
    test = tracking.load_frame(client, parent_run_id, lineage.FRAME_TEST)
    model = registry.load_run_model(selected["model_uri"], what=f"the {selected['family']} model of run "
                                    f"{selected['run_id']}")
    proba = positive_proba(model, test, settings.positive_label)
    metrics = compute_metrics(test["label"], proba, positive_label=settings.positive_label,
                              threshold=settings.decision_threshold)
    from autoretrain.training.plots import evaluation_figures  # matplotlib: only this step draws (~1 s per task saved)

    figures = evaluation_figures(test["label"], proba, metrics, labels=settings.labels,
                                 positive_label=settings.positive_label)
    scores = test[[c for c in ("label", "text", "origin") if c in test.columns]].assign(proba=proba)
    # the comparison and the model card read these
    tracking.log_frame(client, parent_run_id, scores, lineage.FRAME_HOLDOUT_SCORES)
    for run_id in (selected["run_id"], parent_run_id):
        with mlflow.start_run(run_id=run_id):
            mlflow.log_metrics({f"holdout_{k}": float(v) for k, v in metrics.items()})
            for path, figure in figures.items():
                mlflow.log_figure(figure, path)
    import matplotlib.pyplot as plt

    for figure in figures.values():
        plt.close(figure)
    log.info("hold-out of %s: f1 %.4f mcc %.4f fpr %.4f ece %.4f accuracy %.4f", selected["family"],
             metrics["f1"], metrics["mcc"], metrics["fpr"], metrics["ece"], metrics["accuracy"])
    return metrics


def register_model(settings: Settings, *, parent_run_id: str, selected: SelectedModel,
                   metrics: HoldoutMetrics) -> RegisteredVersion:
    """Register the selected model (idempotent per run) with its SHA-256 and key metrics as tags."""
    client, _ = _client(settings)
    parent_tags = client.get_run(parent_run_id).data.tags
    tags = {lineage.FAMILY: selected["family"], lineage.PARENT_RUN_ID: parent_run_id,
            lineage.DATA_DIGEST: parent_tags.get(lineage.DATA_DIGEST, ""),
            lineage.AIRFLOW_DAG_ID: parent_tags.get(lineage.AIRFLOW_DAG_ID, ""),
            lineage.AIRFLOW_RUN_ID: parent_tags.get(lineage.AIRFLOW_RUN_ID, ""),
            **{f"holdout_{k}": f"{metrics[k]:.6f}" for k in ("accuracy", "f1", "mcc", "ece", "fpr")}}
    with aliases.engine_for(settings) as engine:
        ref = registry.register_version(client, name=settings.model_name, model_uri=selected["model_uri"],
                                        run_id=selected["run_id"], tags=tags, engine=engine,
                                        key=settings.integrity_key,
                                        registered_by=f"{tags[lineage.AIRFLOW_DAG_ID] or 'cli'}/"
                                                      f"{tags[lineage.AIRFLOW_RUN_ID] or parent_run_id}")
    from autoretrain.training import model_card

    model_card.publish(settings, client, registered=ref.as_dict(), parent_run_id=parent_run_id, metrics=metrics)
    return ref.as_dict()


def gate_model(settings: Settings, *, registered: RegisteredVersion, metrics: HoldoutMetrics) -> GateVerdict:
    """Check the absolute gates and record the verdict on the model version."""
    decision = check_gates(metrics, accuracy_min=settings.accuracy_min, f1_min=settings.f1_min,
                           ece_max=settings.ece_max)
    client, _ = _client(settings)
    client.set_model_version_tag(registered["name"], registered["version"], lineage.GATES,
                                 "passed" if decision.passed else "failed")
    for reason in decision.reasons:
        log.info("gate: %s", reason)
    return decision.as_dict()


def assign_alias(settings: Settings, *, registered: RegisteredVersion, promote: bool = True,
                 run_id: str | None = None, actor: str = "autoretrain.training") -> AliasAssignment:
    """For a version that passed its gates: ``champion`` when there is none, else no alias (yet).

    With a champion the version gets no alias here: it goes to ``retrain_compare_promote`` (the
    ``training`` DAG triggers it with the version; ``autoretrain train`` says how), whose run sets
    ``challenger`` when it starts. So a version registered while a canary runs never moves the
    ``challenger`` that canary routes to (one rollout at a time: that DAG's ``max_active_runs=1``).

    The champion check and the move run under the model's lock
    (:func:`autoretrain.registry.assign_version`), audited under ``run_id`` (default: the Airflow
    run recorded on the version): of two first trainings at once, one is champion, one challenger.
    """
    name, version = registered["name"], registered["version"]
    if not promote:
        return {"alias": None, "version": version, "reason": "promote=false: registered without alias",
                "rollout": False}
    client, _ = _client(settings)
    tags = registry.get_version(client, name, version).tags
    dag_id, airflow_run = tags.get(lineage.AIRFLOW_DAG_ID), tags.get(lineage.AIRFLOW_RUN_ID)
    run_id = run_id or f"{dag_id or 'unknown'}/{airflow_run or 'unknown'}"
    with aliases.engine_for(settings) as engine:  # the champion check and the move under one lock
        assigned = registry.assign_version(client, engine, name=name, version=version, actor=actor, run_id=run_id,
                                           metrics={k: tags[k] for k in sorted(tags) if k.startswith("holdout_")},
                                           otherwise=None)
    alias: TrainingAlias | None = registry.CHAMPION if assigned.alias == registry.CHAMPION else None
    return {"alias": alias, "version": version, "reason": assigned.reason, "rollout": alias is None}


class _DropServingInputCheck(logging.Filter):
    """MLflow's serving-input check of ``log_model`` loads the model through ``mlflow.sklearn``, which every
    AutoRetrain process refuses (``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``, ADR 0007): its warning says
    nothing about the model. Registration vets the model with the project's own loader instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to validate serving input example")


@contextmanager
def _no_serving_input_check_warning() -> Generator[None, None, None]:
    logger, drop = logging.getLogger("mlflow.models.model"), _DropServingInputCheck()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def pinned_requirements() -> list[str]:
    """``pkg==version`` for the packages a served model needs, as installed here."""
    return [f"{pkg}=={metadata.version(pkg)}" for pkg in MODEL_REQUIREMENTS]


# ------------------------------------------------------------------------------------------ all
def run_training(settings: Settings, key: RunKey) -> TrainingResult:
    """Every step in order, in this process (the CLI and benchmarks use this)."""
    started = time.perf_counter()
    loaded = load_data(settings, key)
    parent = loaded["parent_run_id"]
    validated = validate_data(settings, parent_run_id=parent)
    results = [train_family(settings, parent_run_id=parent, family=f) for f in settings.families]
    selected = select_model(settings, parent_run_id=parent, results=results)
    metrics = evaluate_model(settings, parent_run_id=parent, selected=selected)
    registered = register_model(settings, parent_run_id=parent, selected=selected, metrics=metrics)
    gate = gate_model(settings, registered=registered, metrics=metrics)
    if gate["passed"]:
        alias = assign_alias(settings, registered=registered, promote=settings.promote)
    else:
        alias = {"alias": None, "version": registered["version"], "reason": "gates failed", "rollout": False}
    return {"parent_run_id": parent, "data": loaded, "validation": validated,
            "families": [{"family": r["family"], "cv_metrics": r["cv_metrics"]} for r in results],
            "selected": selected["family"], "holdout": metrics, "registered": registered,
            "gate": gate, "alias": alias, "seconds": round(time.perf_counter() - started, 1)}


def as_frame(messages: Sequence[str]) -> pd.DataFrame:
    """The model's input: a DataFrame with one ``text`` column."""
    return pd.DataFrame({"text": list(messages)})
