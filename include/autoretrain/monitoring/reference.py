"""The inputs of every drift check: the champion's reference, the window's statistics, the tuning constants.

:func:`build_reference` prepares the champion's reference once (vocabulary, token and character
statistics, TF-IDF rows, scores); :class:`WindowStats` computes a window's statistics lazily, each
at most once. The checks themselves live in :mod:`autoretrain.monitoring.checks`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from autoretrain.monitoring import textstats as ts
from autoretrain.training.evaluation import compute_metrics

DRIFT_THRESHOLD = 0.15  # Settings.drift_threshold: the default of the checks on the PSI scale
MIN_WINDOW_SIZE = 100  # fewer predictions than this: "insufficient data", not drift
MIN_LABELS = 50  # fewer labelled messages than this: the feedback checks are skipped
ALPHA = 0.001  # chance that sampling noise alone crosses a noise floor, per check
TEXT_ROWS = 100_000  # window messages the text checks read; beyond, a uniform sample of this many
SAMPLE_ROWS = 10_000  # distinct messages for the permutation-tested checks (TF-IDF, Jaccard)
NULL_LABELS = 10_000  # labels per bootstrap round of the feedback checks' noise floors (scaled above)
DOMAIN_ROWS = 5_000  # rows per side for the domain classifier
PERMUTATIONS = 40
NULL_ROUNDS = 200  # bootstrap rounds of the feedback checks' noise floors
EMERGING = {"min_count": 5, "min_share": 0.005, "min_lift": 10.0, "top": 20}
ACTIVE_SHARE = 0.01  # a token is "active" in a sample when at least 1 % of its messages hold it
TFIDF_MIN_DF = 10  # TF-IDF features in the term-mass divergence: in at least this many reference messages


@dataclass(frozen=True)
class Sample:
    """Messages and, optionally, the model's P(positive) for each (the prediction log's columns)."""

    texts: Sequence[str]
    proba: Sequence[float] | np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Reference:
    """The champion's reference, prepared once: vocabulary, token and character statistics, scores.

    Build it with :func:`build_reference`; it can be reused for every window.
    """

    n: int
    ids: ts.TokenIds  # token -> id; ids below ``n_model`` are the model's word vocabulary
    n_model: int
    pattern: Any
    lowercase: bool
    tokens: ts.Tokens
    oov_rate: float  # leave-one-out rate of tokens a new message would not find in the vocabulary
    oov_variance: float
    chars: dict[str, np.ndarray]
    vectorizer: Any  # fitted word TfidfVectorizer (the model's, or one fitted on the reference)
    tfidf: sp.csr_matrix  # reference rows over ``tfidf_columns``, re-normalized
    tfidf_columns: np.ndarray  # the vectorizer's features seen in >= TFIDF_MIN_DF reference messages
    domain: sp.csr_matrix  # hashed features of (up to DOMAIN_ROWS) distinct reference messages
    proba: np.ndarray | None
    labels: np.ndarray | None  # 1 = positive, aligned with ``proba``
    metrics: dict[str, float] | None  # baseline evaluation of (labels, proba), or as given
    positive_label: str
    decision_threshold: float


def build_reference(texts: Sequence[str], *, proba: Sequence[float] | np.ndarray | None = None,
                    labels: Sequence[str] | None = None, model: Any = None,
                    metrics: Mapping[str, float] | None = None, positive_label: str = "spam",
                    decision_threshold: float = 0.5, seed: int = 0) -> Reference:
    """Prepare the champion's reference from its training messages.

    ``proba`` (and ``labels``, aligned with ``proba``) should be *out-of-sample* scores, e.g.
    :func:`out_of_fold_proba` or the hold-out's: in-sample scores are over-confident and would read
    as prediction drift on any new data. They need not be aligned with ``texts``. ``metrics`` is
    the baseline evaluation used when no (labels, proba) pairs are given.
    """
    texts = list(dict.fromkeys(str(t) for t in texts))  # distinct messages, like the window's
    if not texts:
        raise ValueError("build_reference needs at least one reference message")
    vectorizer = word_vectorizer(model)
    if vectorizer is None:
        from autoretrain.training.features import build_features

        vectorizer = next(t for name, t, _ in build_features().transformers if name == "word").fit(texts)
        unigrams: list[str] = []
    else:
        unigrams = sorted(t for t in vectorizer.vocabulary_ if " " not in t)
    ids = ts.TokenIds(unigrams)
    pattern = ts.compile_token_pattern(vectorizer.token_pattern)
    tokens = ts.tokenize(texts, ids, pattern=pattern, lowercase=vectorizer.lowercase)
    n_model = len(unigrams) + 1 if unigrams else len(ids)  # id 0 is the sentinel
    doc_freq = tokens.doc_freq
    # leave-one-out: a token seen in one reference message only would be new to a vocabulary
    # fitted without that message (the reference is the model's training data)
    unseen = (np.arange(len(doc_freq)) >= n_model) | (doc_freq == 1)
    oov_per_message = tokens.counts @ unseen.astype(float)
    full = vectorizer.transform(texts).tocsr()
    # features of one reference message only are its private vocabulary (like the leave-one-out OOV
    # rate above): keeping them would make reference rows look unlike any new message
    doc_freq_tfidf = np.bincount(full.indices, minlength=full.shape[1])
    columns = np.flatnonzero(doc_freq_tfidf >= min(TFIDF_MIN_DF, doc_freq_tfidf.max(initial=1)))
    tfidf = tfidf_rows(full, columns)
    y, p = _pairs(labels, proba, positive_label)
    if y is not None:
        metrics = compute_metrics(np.asarray(labels), p, positive_label=positive_label,
                                  threshold=decision_threshold)
    return Reference(
        n=len(texts), ids=ids, n_model=n_model, pattern=pattern, lowercase=vectorizer.lowercase, tokens=tokens,
        oov_rate=float(oov_per_message.sum() / max(tokens.lengths.sum(), 1)),
        oov_variance=ts.ratio_variance(oov_per_message, tokens.lengths), chars=ts.char_features(texts),
        vectorizer=vectorizer, tfidf=tfidf, tfidf_columns=columns,
        domain=hashed_features(distinct_sample(texts, DOMAIN_ROWS, np.random.default_rng(seed))),
        proba=p if p is not None else (None if proba is None else np.asarray(proba, dtype=float)),
        labels=y, metrics=dict(metrics) if metrics else None, positive_label=positive_label,
        decision_threshold=decision_threshold)


def _pairs(labels: Sequence[str] | None, proba: Any, positive_label: str) -> tuple[Any, Any]:
    if labels is None or proba is None:
        return None, None
    if len(labels) != len(proba):
        raise ValueError(f"reference labels ({len(labels)}) and proba ({len(proba)}) must be aligned")
    return (np.asarray(labels) == positive_label).astype(int), np.asarray(proba, dtype=float)


def tfidf_rows(matrix: sp.csr_matrix, columns: np.ndarray) -> sp.csr_matrix:
    """The TF-IDF rows restricted to ``columns`` and L2-normalized again."""
    from sklearn.preprocessing import normalize

    return normalize(matrix[:, columns], norm="l2", copy=False).tocsr()


def word_vectorizer(model: Any) -> Any:
    """The fitted word TF-IDF vectorizer of a features -> clf pipeline, or None."""
    try:
        return model.named_steps["features"].named_transformers_["word"]
    except (AttributeError, KeyError, TypeError):
        return None


def out_of_fold_proba(model: Any, texts: Sequence[str], labels: Sequence[str], *, positive_label: str,
                      folds: int = 5, seed: int = 42) -> np.ndarray:
    """Out-of-fold P(positive) of ``model``'s pipeline on its training data: honest reference scores."""
    import pandas as pd
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    frame = pd.DataFrame({"text": list(texts)})
    proba = cross_val_predict(clone(model), frame, np.asarray(labels), method="predict_proba",
                              cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return proba[:, list(model.classes_).index(positive_label)]


def distinct_sample(texts: Sequence[str], rows: int, rng: np.random.Generator) -> list[str]:
    """Up to ``rows`` distinct messages, drawn uniformly (duplicates would leak across CV folds)."""
    distinct = list(dict.fromkeys(texts))
    if len(distinct) <= rows:
        return distinct
    return [distinct[i] for i in np.sort(rng.choice(len(distinct), size=rows, replace=False))]


def hashed_features(texts: Sequence[str]) -> sp.csr_matrix:
    """Binary word 1-2-gram features, hashed (no fitting), rows L2-normalized: the domain classifier's input."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(ngram_range=(1, 2), n_features=2 ** 16, alternate_sign=False, binary=True,
                             norm="l2").transform(texts)


# ------------------------------------------------------------------------------ the window
class WindowStats:
    """The window's messages, scores, labels and statistics, each computed once and only if needed.

    Text statistics read at most ``text_rows`` messages (a uniform sample of a larger window) and
    are computed over the *distinct* ones (``distinct``), with their multiplicity (``weights``)
    where volume matters (OOV rate, lengths, character classes).
    """

    def __init__(self, texts: Sequence[str], proba: np.ndarray | None, labels: np.ndarray | None,
                 reference: Reference, rng: np.random.Generator, *, text_rows: int | None = TEXT_ROWS) -> None:
        self.texts, self.proba, self.labels, self.ref, self.rng = texts, proba, labels, reference, rng
        self.text_rows = len(texts) if text_rows is None else min(text_rows, len(texts))

    @cached_property
    def _distinct_counts(self) -> Counter[str]:
        if self.text_rows >= len(self.texts):
            return Counter(str(t) for t in self.texts)
        rows = np.sort(self.rng.choice(len(self.texts), size=self.text_rows, replace=False))
        return Counter(str(self.texts[i]) for i in rows)

    @cached_property
    def distinct(self) -> list[str]:
        """The distinct messages (of the sample), in order of first appearance."""
        return list(self._distinct_counts)

    @cached_property
    def weights(self) -> np.ndarray:
        """How often each distinct message occurs (in the sample)."""
        counts = self._distinct_counts
        return np.fromiter(counts.values(), dtype=float, count=len(counts))

    @cached_property
    def ids(self) -> ts.TokenIds:
        return self.ref.ids.copy()

    @cached_property
    def tokens(self) -> ts.Tokens:
        """Token counts of the distinct messages."""
        return ts.tokenize(self.distinct, self.ids, pattern=self.ref.pattern, lowercase=self.ref.lowercase)

    @cached_property
    def chars(self) -> dict[str, np.ndarray]:
        """Length and character-class shares of the distinct messages."""
        return ts.char_features(self.distinct)

    @cached_property
    def sample(self) -> np.ndarray:
        """Indices into ``distinct`` of a uniform sample of at most SAMPLE_ROWS messages."""
        n = len(self.distinct)
        return np.arange(n) if n <= SAMPLE_ROWS else np.sort(self.rng.choice(n, SAMPLE_ROWS, replace=False))


@dataclass(frozen=True)
class CheckContext:
    """What every check gets besides the data: the noise-floor level and the random generator."""

    alpha: float
    z: float
    rng: np.random.Generator
