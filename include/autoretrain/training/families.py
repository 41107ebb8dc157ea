"""Model families, the hyperparameter search with stratified CV, and "calibrate where it helps".

A family's whole sklearn Pipeline (features + classifier) is the artifact that gets logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import brier_score_loss, f1_score
from sklearn.model_selection import ParameterGrid, StratifiedKFold
from sklearn.naive_bayes import ComplementNB, MultinomialNB
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from autoretrain.errors import AutoRetrainError
from autoretrain.training.evaluation import compute_metrics
from autoretrain.training.features import build_features

log = logging.getLogger(__name__)

CALIBRATION_FOLDS = 3


@dataclass(frozen=True)
class Family:
    """A classifier family: how to build it, its search grid, and whether it has native probabilities."""

    name: str
    make: Callable[[int], ClassifierMixin]
    grid: dict[str, list[Any]]
    native_proba: bool = True


FAMILIES: dict[str, Family] = {
    f.name: f for f in (
        Family("multinomial_nb", lambda seed: MultinomialNB(), {"alpha": [0.01, 0.03, 0.1]}),
        Family("complement_nb", lambda seed: ComplementNB(), {"alpha": [0.03, 0.1, 0.3]}),
        Family("logreg", lambda seed: LogisticRegression(solver="liblinear", max_iter=1000, random_state=seed),
               {"C": [3.0, 10.0, 30.0, 100.0]}),
        # LinearSVC has no probabilities: it is always wrapped in a sigmoid calibrator.
        Family("linear_svm", lambda seed: LinearSVC(random_state=seed), {"C": [0.3, 1.0, 3.0]},
               native_proba=False),
        Family("sgd", lambda seed: SGDClassifier(loss="modified_huber", max_iter=50, tol=None,
                                                 random_state=seed),
               {"alpha": [1e-5, 3e-5, 1e-4]}),
    )
}


class UnknownFamilyError(AutoRetrainError, ValueError):
    """A family name that AutoRetrain does not know."""


def get_family(name: str) -> Family:
    """The family called ``name``, or a clear error listing the known ones."""
    try:
        return FAMILIES[name]
    except KeyError as err:
        raise UnknownFamilyError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}") from err


@dataclass
class FamilyResult:
    """The best model of one family: parameters, out-of-fold CV metrics, the fitted pipeline."""

    family: str
    params: dict[str, Any]
    calibration: str
    cv_metrics: dict[str, float]
    brier_uncalibrated: float | None
    fit_seconds: float
    pipeline: Pipeline = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (everything but the pipeline)."""
        return {"family": self.family, "params": self.params, "calibration": self.calibration,
                "cv_metrics": self.cv_metrics, "brier_uncalibrated": self.brier_uncalibrated,
                "fit_seconds": self.fit_seconds}


def build_pipeline(classifier: ClassifierMixin, *, text_column: str = "text") -> Pipeline:
    """features -> classifier, as one Pipeline over a DataFrame with a ``text`` column."""
    return Pipeline([("features", build_features(text_column=text_column)), ("clf", classifier)])


def _calibrated(estimator: ClassifierMixin) -> CalibratedClassifierCV:
    return CalibratedClassifierCV(estimator, method="sigmoid", cv=CALIBRATION_FOLDS)


@dataclass
class CVFolds:
    """TF-IDF features of each stratified fold, fitted on that fold's training part only.

    Computing them once and sharing them across candidates and families is what keeps the sweep
    fast: the vectorizers dominate the cost, the linear classifiers are cheap.
    """

    y: np.ndarray
    folds: list[tuple[Any, np.ndarray, Any, np.ndarray, np.ndarray]]  # Xtr, ytr, Xva, yva, va_index


def make_folds(train: pd.DataFrame, *, cv_folds: int = 5, seed: int = 42) -> CVFolds:
    """Split ``train`` into stratified folds and vectorize each (features fitted per fold)."""
    y = train["label"].to_numpy()
    folds = []
    for tr_idx, va_idx in StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed).split(train, y):
        features = build_features()
        x_tr = features.fit_transform(train.iloc[tr_idx][["text"]])
        x_va = features.transform(train.iloc[va_idx][["text"]])
        folds.append((x_tr, y[tr_idx], x_va, y[va_idx], va_idx))
    return CVFolds(y=y, folds=folds)


def _cv_f1(clf: ClassifierMixin, folds: CVFolds, positive_label: str) -> float:
    scores = [f1_score(y_va, clone(clf).fit(x_tr, y_tr).predict(x_va), pos_label=positive_label)
              for x_tr, y_tr, x_va, y_va, _ in folds.folds]
    return float(np.mean(scores))


def _oof_proba(clf: ClassifierMixin, folds: CVFolds, positive_label: str) -> np.ndarray:
    out = np.zeros(len(folds.y))
    for x_tr, y_tr, x_va, _, va_idx in folds.folds:
        fitted = clone(clf).fit(x_tr, y_tr)
        out[va_idx] = fitted.predict_proba(x_va)[:, list(fitted.classes_).index(positive_label)]
    return out


def search_family(name: str, train: pd.DataFrame, *, positive_label: str, cv_folds: int = 5,
                  seed: int = 42, threshold: float = 0.5, folds: CVFolds | None = None) -> FamilyResult:
    """Grid-search one family with stratified CV, calibrate where it lowers the Brier score, refit.

    Hyperparameters are chosen by mean CV F1 of the positive class. The reported CV metrics come
    from out-of-fold probabilities of the final variant (calibrated or not), so they are comparable
    across families and never touch the hold-out. Pass ``folds`` to share fold features.
    """
    family = get_family(name)
    started = time.perf_counter()
    folds = folds or make_folds(train, cv_folds=cv_folds, seed=seed)
    scores: dict[tuple[tuple[str, Any], ...], float] = {}
    for candidate in ParameterGrid(family.grid):
        scores[tuple(sorted(candidate.items()))] = _cv_f1(family.make(seed).set_params(**candidate),
                                                           folds, positive_label)
    best = max(scores, key=scores.__getitem__)  # first best in grid order, as GridSearchCV picks
    params = dict(best)
    tuned = family.make(seed).set_params(**params)
    variants = {"sigmoid": _calibrated(tuned)}
    if family.native_proba:
        variants["none"] = tuned
    oof = {variant: _oof_proba(clf, folds, positive_label) for variant, clf in variants.items()}
    briers = {v: float(brier_score_loss(folds.y == positive_label, p)) for v, p in oof.items()}
    calibration = min(briers, key=briers.__getitem__)  # "calibrate where it helps": the lower Brier wins
    pipeline = build_pipeline(clone(variants[calibration])).fit(train[["text"]], folds.y)
    metrics = compute_metrics(folds.y, oof[calibration], positive_label=positive_label, threshold=threshold)
    metrics["cv_f1_search"] = scores[tuple(sorted(params.items()))]
    seconds = time.perf_counter() - started
    log.info("family %s: params %s, calibration %s, CV f1 %.4f mcc %.4f (%.1fs)", name, params,
             calibration, metrics["f1"], metrics["mcc"], seconds)
    return FamilyResult(family=name, params=_plain(params), calibration=calibration,
                        cv_metrics=metrics, brier_uncalibrated=briers.get("none"),
                        fit_seconds=round(seconds, 3), pipeline=pipeline)


def positive_proba(model: Any, frame: pd.DataFrame, positive_label: str) -> np.ndarray:
    """P(positive label) for each row of ``frame`` from a fitted classifier pipeline."""
    classes = list(model.classes_)
    return model.predict_proba(frame[["text"]])[:, classes.index(positive_label)]


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
