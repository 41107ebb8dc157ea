"""Score one message fast with a fitted TF-IDF + linear pipeline, and say which terms drove it.

``pipeline.predict_proba`` costs about 2.5 ms for one message, mostly sklearn's input checks and
sparse-matrix plumbing (a DataFrame, two vectorizers, an hstack, the classifier's validation); the
arithmetic itself is tens of microseconds. :class:`FastPredictor` replays the same fitted pieces
(each vectorizer's analyzer, vocabulary, idf and norm; the classifier's weights and link) on one
string with plain numpy. :func:`compile_predictor` only returns it after it reproduced
``pipeline.predict_proba`` on probe messages, else it falls back to :class:`PipelinePredictor`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.naive_bayes import ComplementNB, MultinomialNB
from sklearn.svm import LinearSVC

from autoretrain.errors import AutoRetrainError

log = logging.getLogger(__name__)

#: messages every loaded model scores before it serves: warm-up and the fast-path equality check
PROBES = (
    "WINNER!! You have been selected to receive a £900 prize reward! Call 09061701461 to claim",
    "Are we still on for lunch tomorrow? I'll be there around 12",
    "FREE entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005. Text FA to 87121",
    "ok", "🎉🎉 free 🎁 for you", "Ünïcödé ñoñsense ⋯ ∑ 日本語のテキスト", "zzzzqqqq xxyyzz",
    "Call me when you get this. Sorry, I'm running late " * 20,
)
RTOL, ATOL = 1e-9, 1e-12
_EMPTY_I = np.zeros(0, dtype=np.intp)
_EMPTY_F = np.zeros(0, dtype=np.float64)


class Unsupported(AutoRetrainError, TypeError):
    """The pipeline has a step the fast path does not replay (it is served through the pipeline)."""


class Predictor(Protocol):
    """P(positive label) of one message, plus up to ``top_k`` (term, weight toward positive)."""

    fast: bool

    def score(self, text: str, top_k: int = 0) -> tuple[float, list[tuple[str, float]]]: ...


class PipelinePredictor:
    """The pipeline itself, on a one-row DataFrame (slow path; no explanations)."""

    fast = False

    def __init__(self, pipeline: Any, *, positive_label: str, text_column: str = "text") -> None:
        self._pipeline, self._column = pipeline, text_column
        self._index = list(pipeline.classes_).index(positive_label)

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        frame = pd.DataFrame({self._column: list(texts)})
        return self._pipeline.predict_proba(frame)[:, self._index]

    def score(self, text: str, top_k: int = 0) -> tuple[float, list[tuple[str, float]]]:
        return float(self.proba([text])[0]), []


class _Vectorizer:
    """A fitted TfidfVectorizer replayed on one string: counts -> (1 + log tf) -> idf -> norm."""

    def __init__(self, vec: TfidfVectorizer, offset: int) -> None:
        if vec.norm not in ("l1", "l2", None) or np.dtype(vec.dtype) != np.float64:
            raise Unsupported(f"TfidfVectorizer(norm={vec.norm!r}, dtype={vec.dtype}) is not replayed")
        self.analyze = vec.build_analyzer()
        self.vocabulary = vec.vocabulary_
        self.idf = vec.idf_ if vec.use_idf else None
        self.binary, self.sublinear, self.norm, self.offset = vec.binary, vec.sublinear_tf, vec.norm, offset
        self.size = len(self.vocabulary)

    def transform(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        counts = Counter(map(self.vocabulary.get, self.analyze(text)))  # C loops, not a Python loop
        counts.pop(None, None)  # terms outside the vocabulary
        if not counts:
            return _EMPTY_I, _EMPTY_F
        n = len(counts)
        idx = np.fromiter(counts.keys(), dtype=np.intp, count=n)
        val = np.fromiter(counts.values(), dtype=np.float64, count=n)
        order = idx.argsort()  # sklearn's CSR rows are sorted: same order, same float sums
        idx, val = idx[order], (np.ones(n) if self.binary else val[order])
        if self.sublinear:
            np.log(val, out=val)
            val += 1.0
        if self.idf is not None:
            val *= self.idf[idx]
        if self.norm is not None:
            norm = math.sqrt(float(val @ val)) if self.norm == "l2" else float(np.abs(val).sum())
            if norm > 0:
                val /= norm
        return idx + self.offset, val


@dataclass(frozen=True)
class _Head:
    """A linear classifier: scores = x @ weights + bias (k columns), then ``link`` -> P(classes_[1])."""

    weights: np.ndarray  # (n_features, k)
    bias: np.ndarray  # (k,)
    link: Callable[[np.ndarray], float]
    direction: np.ndarray  # (n_features,): how each feature moves P(classes_[1]) (for explanations)


def _nb_head(clf: MultinomialNB | ComplementNB) -> _Head:
    flp = np.asarray(clf.feature_log_prob_, dtype=np.float64)
    prior = clf.class_log_prior_ if isinstance(clf, MultinomialNB) else np.zeros(2)  # ComplementNB: no prior

    def link(s: np.ndarray) -> float:  # exp(jll - logsumexp(jll)) for the second class
        top = max(s[0], s[1])
        return math.exp(s[1] - (top + math.log(math.exp(s[0] - top) + math.exp(s[1] - top))))

    return _Head(np.ascontiguousarray(flp.T), np.asarray(prior, dtype=np.float64), link, flp[1] - flp[0])


def _decision_head(clf: Any, link: Callable[[np.ndarray], float]) -> _Head:
    coef = np.asarray(clf.coef_, dtype=np.float64)
    if coef.shape[0] != 1:
        raise Unsupported(f"{type(clf).__name__} with {coef.shape[0]} coefficient rows (binary only)")
    return _Head(np.ascontiguousarray(coef.T), np.asarray(clf.intercept_, dtype=np.float64), link, coef[0])


def _response_head(est: Any) -> _Head:
    """What sigmoid calibration sees: decision_function when the estimator has one, else P(classes_[1])."""
    if isinstance(est, LinearSVC | LogisticRegression | SGDClassifier):
        return _decision_head(est, lambda s: float(s[0]))
    if isinstance(est, MultinomialNB | ComplementNB):
        return _nb_head(est)
    raise Unsupported(f"calibrated {type(est).__name__} is not replayed")


def _calibrated_head(clf: CalibratedClassifierCV) -> _Head:
    parts = []
    for cc in clf.calibrated_classifiers_:
        if cc.method != "sigmoid" or len(cc.calibrators) != 1:
            raise Unsupported(f"calibration method {cc.method!r} is not replayed")
        cal = cc.calibrators[0]
        parts.append((_response_head(cc.estimator), float(cal.a_), float(cal.b_)))
    cuts = np.cumsum([0] + [h.weights.shape[1] for h, _, _ in parts])
    slices = [slice(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    members = [(h.link, sl, a, b) for (h, a, b), sl in zip(parts, slices, strict=True)]

    def link(s: np.ndarray) -> float:  # mean over folds of expit(-(a * f + b))
        return sum(float(expit(-(a * f(s[sl]) + b))) for f, sl, a, b in members) / len(members)

    weights = np.ascontiguousarray(np.hstack([h.weights for h, _, _ in parts]))
    bias = np.concatenate([h.bias for h, _, _ in parts])
    # an array (sum() starting from 0 makes its static type "array or float")
    direction = np.asarray(sum(-a * h.direction for h, a, _ in parts) / len(parts))
    return _Head(weights, bias, link, direction)


def _head(clf: Any) -> _Head:
    if len(getattr(clf, "classes_", ())) != 2:
        raise Unsupported(f"{type(clf).__name__} is not a fitted binary classifier")
    if isinstance(clf, CalibratedClassifierCV):
        return _calibrated_head(clf)
    if isinstance(clf, MultinomialNB | ComplementNB):
        return _nb_head(clf)
    if isinstance(clf, LogisticRegression):
        return _decision_head(clf, lambda s: float(expit(s[0])))
    if isinstance(clf, SGDClassifier) and clf.loss == "modified_huber":
        return _decision_head(clf, lambda s: (min(max(float(s[0]), -1.0), 1.0) + 1.0) / 2.0)
    raise Unsupported(f"{type(clf).__name__} is not replayed")


class FastPredictor:
    """features (TF-IDF vectorizers of a ColumnTransformer) -> linear head, for one string at a time."""

    fast = True

    def __init__(self, pipeline: Any, *, positive_label: str, text_column: str = "text") -> None:
        features, clf = _split(pipeline)
        self._vectorizers = []
        for name, vec, column in features.transformers_:
            if name == "remainder":
                continue
            if not isinstance(vec, TfidfVectorizer) or column != text_column:
                raise Unsupported(f"feature step {name!r} ({type(vec).__name__} on {column!r}) is not replayed")
            self._vectorizers.append(_Vectorizer(vec, features.output_indices_[name].start))
        self._head = _head(clf)
        if self._head.weights.shape[0] != sum(v.size for v in self._vectorizers):
            raise Unsupported("the classifier's feature count differs from the vectorizers' vocabulary")
        self._flip = list(clf.classes_).index(positive_label) == 0
        first = self._vectorizers[0]  # explanations use the first vectorizer's terms (word n-grams)
        self._terms = np.asarray(features.named_transformers_[features.transformers_[0][0]]
                                 .get_feature_names_out(), dtype=object)
        self._explain = (first.offset, -self._head.direction if self._flip else self._head.direction)

    def score(self, text: str, top_k: int = 0) -> tuple[float, list[tuple[str, float]]]:
        parts = [vec.transform(text) for vec in self._vectorizers]
        idx = np.concatenate([p[0] for p in parts])
        val = np.concatenate([p[1] for p in parts])
        head = self._head
        p1 = head.link(val @ head.weights[idx] + head.bias)
        proba = 1.0 - p1 if self._flip else p1
        return proba, (self._top(*parts[0], top_k) if top_k > 0 else [])

    def _top(self, idx: np.ndarray, val: np.ndarray, top_k: int) -> list[tuple[str, float]]:
        if not len(idx):
            return []
        offset, direction = self._explain
        contrib = val * direction[idx]
        order = np.argsort(-np.abs(contrib), kind="stable")[:top_k]
        return [(str(self._terms[idx[i] - offset]), round(float(contrib[i]), 6)) for i in order.tolist()]

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self.score(t)[0] for t in texts])


def _split(pipeline: Any) -> tuple[ColumnTransformer, Any]:
    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) != 2 or not isinstance(steps[0][1], ColumnTransformer):
        raise Unsupported("expected Pipeline([ColumnTransformer of TF-IDF vectorizers, classifier])")
    return steps[0][1], steps[1][1]


def compile_predictor(pipeline: Any, *, positive_label: str, text_column: str = "text",
                      probes: Sequence[str] = PROBES) -> Predictor:
    """The fast path if it reproduces ``pipeline.predict_proba`` on ``probes``, else the pipeline."""
    slow = PipelinePredictor(pipeline, positive_label=positive_label, text_column=text_column)
    expected = slow.proba(probes)  # also the warm-up of the slow path
    try:
        fast = FastPredictor(pipeline, positive_label=positive_label, text_column=text_column)
    except Unsupported as err:
        log.warning("serving through the sklearn pipeline (slower): %s", err)
        return slow
    got = fast.proba(probes)
    if not np.allclose(got, expected, rtol=RTOL, atol=ATOL):
        worst = float(np.max(np.abs(got - expected)))
        log.warning("fast path differs from pipeline.predict_proba by up to %.3g on the probes; "
                    "serving through the pipeline", worst)
        return slow
    return fast
