"""Model families, the DataFrame pipeline contract, and the CV search with calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from autoretrain.data.prepare import deduplicate
from autoretrain.data.sources import read_dataset
from autoretrain.training import families as models
from autoretrain.training.families import FamilyResult, UnknownFamilyError, build_pipeline, get_family, positive_proba

CORPUS = Path(__file__).resolve().parents[3] / "data/sms_spam_collection/SMSSpamCollection"

SPAM = ["WIN a FREE prize now, call 0800 123", "URGENT! You have won cash, txt CLAIM to 8888",
        "Free entry to win tickets, text WIN now", "Congratulations you won a prize call now",
        "Claim your free cash prize today txt YES", "You are a winner! Call to claim 1000 cash"]
HAM = ["See you at lunch tomorrow", "Can you pick up milk on the way home", "I'll be late, sorry",
       "Are we still on for the movie tonight", "Thanks for dinner, it was lovely",
       "Call me when you wake up", "What time is the meeting", "Happy birthday! Have a great day"]


@pytest.fixture(scope="module")
def tiny() -> pd.DataFrame:
    return pd.DataFrame({"label": ["spam"] * len(SPAM) + ["ham"] * len(HAM), "text": SPAM + HAM,
                         "extra": range(len(SPAM) + len(HAM))})


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    """600 de-duplicated rows of the bundled corpus (80 spam)."""
    frame, _ = deduplicate(read_dataset(str(CORPUS), labels=("ham", "spam")).frame)
    return frame.sample(600, random_state=7).reset_index(drop=True)


@pytest.fixture(scope="module")
def folds(sample: pd.DataFrame) -> models.CVFolds:
    return models.make_folds(sample, cv_folds=3, seed=42)


@pytest.fixture(scope="module")
def results(sample: pd.DataFrame, folds: models.CVFolds) -> dict[str, FamilyResult]:
    return {name: models.search_family(name, sample, positive_label="spam", cv_folds=3, folds=folds)
            for name in ("complement_nb", "linear_svm")}


# ---------------------------------------------------------------------------------------- families
def test_get_family_known() -> None:
    family = get_family("linear_svm")
    assert family.name == "linear_svm"
    assert family.native_proba is False
    assert family.grid == {"C": [0.3, 1.0, 3.0]}


def test_get_family_unknown_lists_known_ones() -> None:
    with pytest.raises(UnknownFamilyError) as info:
        get_family("xgboost")
    assert str(info.value) == ("unknown model family 'xgboost'; known: "
                               "['complement_nb', 'linear_svm', 'logreg', 'multinomial_nb', 'sgd']")


@pytest.mark.parametrize("name", sorted(models.FAMILIES))
def test_every_family_builds_with_grid_params_and_seed(name: str) -> None:
    family = get_family(name)
    estimator = family.make(3)
    params = estimator.get_params()
    assert set(family.grid) <= set(params)
    if "random_state" in params:
        assert params["random_state"] == 3
    assert hasattr(estimator, "predict_proba") is family.native_proba


# ---------------------------------------------------------------------------------------- pipeline
@pytest.mark.parametrize("rows", [1, 2, 7])
def test_pipeline_scores_every_row_of_a_dataframe(tiny: pd.DataFrame, rows: int) -> None:
    pipeline = build_pipeline(LogisticRegression()).fit(tiny, tiny["label"])
    frame = pd.DataFrame({"text": ["free prize call now", "see you at lunch", "win cash", "ok", "", "hi",
                                   "x"]})
    predictions = pipeline.predict(frame.iloc[:rows])
    assert predictions.shape == (rows,)
    assert set(predictions) <= {"ham", "spam"}
    assert positive_proba(pipeline, frame.iloc[:rows], "spam").shape == (rows,)


def test_pipeline_selects_the_text_column_by_name(tiny: pd.DataFrame) -> None:
    renamed = tiny.rename(columns={"text": "message"})
    pipeline = build_pipeline(LogisticRegression(), text_column="message").fit(renamed, renamed["label"])
    assert pipeline.predict(pd.DataFrame({"message": ["WIN a FREE prize", "see you tomorrow"],
                                          "other": [1, 2]})).shape == (2,)


def test_pipeline_learns_the_tiny_example(tiny: pd.DataFrame) -> None:
    pipeline = build_pipeline(LogisticRegression(C=100.0)).fit(tiny, tiny["label"])
    assert list(pipeline.predict(tiny)) == list(tiny["label"])


# ------------------------------------------------------------------------------------------ search
@pytest.mark.parametrize("name", ["complement_nb", "linear_svm"])
def test_search_family_result(results: dict[str, FamilyResult], sample: pd.DataFrame, name: str) -> None:
    result = results[name]
    family = get_family(name)
    assert result.family == name
    assert set(result.params) == set(family.grid)
    for key, value in result.params.items():
        assert value in family.grid[key]
        assert type(value) in (int, float)
    assert result.calibration in {"none", "sigmoid"}
    metrics = result.cv_metrics
    for key in ("accuracy", "precision", "recall", "f1", "mcc", "roc_auc", "pr_auc", "ece", "brier", "fpr",
                "cv_f1_search"):
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert metrics["f1"] > 0.8
    assert (metrics["n"], metrics["n_positive"]) == (600, 80)
    assert metrics["tn"] + metrics["fp"] + metrics["fn"] + metrics["tp"] == 600
    assert result.fit_seconds > 0
    summary = result.summary()
    assert set(summary) == {"family", "params", "calibration", "cv_metrics", "brier_uncalibrated",
                            "fit_seconds"}


def test_linear_svm_is_always_sigmoid_calibrated(results: dict[str, FamilyResult]) -> None:
    result = results["linear_svm"]
    assert result.calibration == "sigmoid"
    assert result.brier_uncalibrated is None


def test_native_proba_family_reports_uncalibrated_brier(results: dict[str, FamilyResult]) -> None:
    result = results["complement_nb"]
    assert result.brier_uncalibrated is not None
    # the chosen variant is the one with the lower Brier score
    assert result.cv_metrics["brier"] <= result.brier_uncalibrated + 1e-12
    if result.calibration == "none":
        assert result.cv_metrics["brier"] == pytest.approx(result.brier_uncalibrated)
    else:
        assert result.cv_metrics["brier"] <= result.brier_uncalibrated


def test_search_is_deterministic(results: dict[str, FamilyResult], sample: pd.DataFrame) -> None:
    again = models.search_family("complement_nb", sample, positive_label="spam", cv_folds=3, seed=42)
    assert again.params == results["complement_nb"].params
    assert again.calibration == results["complement_nb"].calibration
    assert again.cv_metrics == pytest.approx(results["complement_nb"].cv_metrics)


def test_search_unknown_family(sample: pd.DataFrame) -> None:
    with pytest.raises(UnknownFamilyError, match="unknown model family 'forest'"):
        models.search_family("forest", sample, positive_label="spam")


def test_make_folds_are_stratified(folds: models.CVFolds) -> None:
    assert len(folds.folds) == 3
    validation = np.concatenate([va_index for *_, va_index in folds.folds])
    assert sorted(validation) == list(range(600))  # every row validated exactly once
    for x_tr, y_tr, x_va, y_va, _ in folds.folds:
        assert x_tr.shape[0] == len(y_tr) == 400 and x_va.shape[0] == len(y_va) == 200
        assert x_tr.shape[1] == x_va.shape[1]
        assert np.mean(y_va == "spam") == pytest.approx(80 / 600, abs=0.01)


# ---------------------------------------------------------------------------------- positive_proba
@pytest.mark.parametrize("name", ["complement_nb", "linear_svm"])
def test_positive_proba(results: dict[str, FamilyResult], sample: pd.DataFrame, name: str) -> None:
    pipeline = results[name].pipeline
    frame = sample.iloc[:25]
    proba = positive_proba(pipeline, frame, "spam")
    assert proba.shape == (25,)
    assert ((proba >= 0) & (proba <= 1)).all()
    spam_column = list(pipeline.classes_).index("spam")
    np.testing.assert_allclose(proba, pipeline.predict_proba(frame[["text"]])[:, spam_column])
    np.testing.assert_allclose(positive_proba(pipeline, frame, "ham"), 1 - proba, rtol=0, atol=1e-12)
