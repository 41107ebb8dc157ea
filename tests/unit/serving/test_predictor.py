"""The serving fast path gives the pipeline's own predict_proba, for every model family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.naive_bayes import BernoulliNB

from autoretrain.config import KNOWN_FAMILIES
from autoretrain.data.sources import read_dataset
from autoretrain.serving import predictor as predictor_mod
from autoretrain.serving.predictor import PROBES, FastPredictor, PipelinePredictor, compile_predictor
from autoretrain.training.families import _calibrated, build_pipeline, get_family
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    frame = read_dataset(str(ROOT / "data/sms_spam_collection/SMSSpamCollection"), labels=("ham", "spam")).frame
    return frame.iloc[:1800].reset_index(drop=True)


@pytest.fixture(scope="module")
def train(data):
    return data.iloc[:1200]


@pytest.fixture(scope="module")
def texts(data) -> list[str]:
    return [*data["text"].iloc[1200:1800], *PROBES, "", " ", "£££ 0800 ✓✓✓ 🎉", "x" * 4000]


def _fit(train, family: str, calibrated: bool):
    spec = get_family(family)
    clf = _calibrated(spec.make(0)) if calibrated or not spec.native_proba else spec.make(0)
    return build_pipeline(clf).fit(train[["text"]], train["label"].to_numpy())


CASES = [(f, c) for f in KNOWN_FAMILIES for c in (False, True) if c or get_family(f).native_proba]


@pytest.mark.parametrize(("family", "calibrated"), CASES)
def test_fast_path_equals_pipeline_predict_proba(train, texts, family, calibrated):
    pipeline = _fit(train, family, calibrated)
    compiled = compile_predictor(pipeline, positive_label="spam")
    assert isinstance(compiled, FastPredictor)
    expected = pipeline.predict_proba(pd.DataFrame({"text": texts}))[:, list(pipeline.classes_).index("spam")]
    got = np.array([compiled.score(t)[0] for t in texts])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert ((got >= 0.5) == (expected >= 0.5)).all()


def test_positive_label_first_in_classes_is_flipped(train, texts):
    pipeline = _fit(train, "logreg", False)
    compiled = compile_predictor(pipeline, positive_label="ham")
    assert compiled.fast
    expected = pipeline.predict_proba(pd.DataFrame({"text": texts}))[:, 0]
    np.testing.assert_allclose([compiled.score(t)[0] for t in texts], expected, rtol=1e-9, atol=1e-12)


def test_top_features_are_the_word_terms_with_the_largest_contribution(train):
    pipeline = _fit(train, "complement_nb", False)
    compiled = compile_predictor(pipeline, positive_label="spam")
    text = "WINNER!! Claim your FREE prize now, call 09061701461"
    _, top = compiled.score(text, top_k=4)

    word = pipeline.named_steps["features"].named_transformers_["word"]
    clf = pipeline.named_steps["clf"]
    x = word.transform([text]).tocoo()
    spam, ham = list(clf.classes_).index("spam"), list(clf.classes_).index("ham")
    terms = word.get_feature_names_out()
    contrib = {terms[j]: v * (clf.feature_log_prob_[spam, j] - clf.feature_log_prob_[ham, j])
               for j, v in zip(x.col, x.data, strict=True)}
    expected = sorted(contrib.items(), key=lambda kv: -abs(kv[1]))[:4]
    assert [t for t, _ in top] == [t for t, _ in expected]
    assert [w for _, w in top] == [round(float(w), 6) for _, w in expected]
    assert compiled.score(text, top_k=0)[1] == []
    assert compiled.score("qqqqzzzz", top_k=4)[1] == []  # no known word: nothing to explain


def test_unsupported_classifier_is_served_through_the_pipeline(train):
    pipeline = build_pipeline(BernoulliNB()).fit(train[["text"]], train["label"].to_numpy())
    compiled = compile_predictor(pipeline, positive_label="spam")
    assert isinstance(compiled, PipelinePredictor) and compiled.fast is False
    expected = pipeline.predict_proba(pd.DataFrame({"text": ["free prize"]}))[0, 1]
    assert compiled.score("free prize", top_k=5) == (expected, [])


def test_a_fast_path_that_disagrees_with_the_pipeline_is_not_used(train, monkeypatch):
    pipeline = _fit(train, "complement_nb", False)
    monkeypatch.setattr(predictor_mod.FastPredictor, "score", lambda self, text, top_k=0: (0.5, []))
    compiled = compile_predictor(pipeline, positive_label="spam")
    assert isinstance(compiled, PipelinePredictor)
