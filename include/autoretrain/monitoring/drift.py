"""Drift checks: small named units with declared default thresholds, each returning a DriftResult.

Modelled on evidently's stattests registry (``legacy/calculations/stattests/registry.py``): a check
is registered with its name, its default threshold and what it needs (texts, probabilities or
feedback labels). :func:`run_checks` compares a window of production messages with the champion's
reference and returns a :class:`DriftReport`; every result carries the threshold it was judged by.

Thresholds are effect sizes on the check's own scale (PSI, Kolmogorov-Smirnov D, ROC-AUC, accuracy
points...). So that small windows do not raise false alarms, a check's effective threshold is the
larger of its declared threshold and its *noise floor*: the value that sampling noise alone exceeds
with probability ``alpha`` at this window's size (``details["noise_floor"]``). ADR 0003 explains the
measures and the defaults; ``make bench-drift-quality`` measures detection and false alarms.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import stats

from autoretrain.monitoring import textstats as ts
from autoretrain.training.evaluation import compute_metrics, json_safe

log = logging.getLogger(__name__)

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


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class DriftResult:
    """One check's verdict: ``drifted`` is ``score > threshold``; ``details`` say why."""

    name: str
    score: float
    threshold: float
    drifted: bool
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (for MLflow, the metrics table, Slack)."""
        return {"name": self.name, "score": self.score, "threshold": self.threshold,
                "drifted": self.drifted, "details": json_safe(self.details)}


@dataclass(frozen=True)
class DriftReport:
    """All check results for one window, or ``insufficient_data`` when the window is too small."""

    results: list[DriftResult]
    insufficient_data: bool
    n_window: int
    n_reference: int
    n_labelled: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # check name -> why it did not run
    text_rows: int = 0  # window messages the text checks read (all, or a uniform sample of TEXT_ROWS)

    @property
    def drifted(self) -> bool:
        """True when any check is over its threshold (never for insufficient data)."""
        return any(r.drifted for r in self.results)

    def result(self, name: str) -> DriftResult | None:
        """The result of check ``name``, if it ran."""
        return next((r for r in self.results if r.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return {"drifted": self.drifted, "insufficient_data": self.insufficient_data,
                "n_window": self.n_window, "n_reference": self.n_reference, "n_labelled": self.n_labelled,
                "text_rows": self.text_rows, "skipped": dict(self.skipped),
                "results": [r.as_dict() for r in self.results]}


# ------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class Check:
    """A registered check: its name, default threshold, what it needs and its measurement.

    ``measure(reference, window, ctx)`` returns ``(score, noise_floor, details)``.
    """

    name: str
    default_threshold: float
    needs: str  # "texts" | "proba" | "labels"
    description: str
    measure: Callable[[Reference, WindowStats, CheckContext], tuple[float, float, dict[str, Any]]]
    psi_scale: bool = False  # its default follows Settings.drift_threshold


CHECKS: dict[str, Check] = {}


def register_check(name: str, *, default_threshold: float, needs: str, description: str,
                   psi_scale: bool = False) -> Callable:
    """Decorator: register ``measure`` as the check ``name`` with its declared default threshold."""
    def wrap(measure: Callable) -> Callable:
        CHECKS[name] = Check(name, default_threshold, needs, description, measure, psi_scale)
        return measure
    return wrap


def default_thresholds(drift_threshold: float | None = None) -> dict[str, float]:
    """Every check's declared threshold; ``drift_threshold`` replaces those on the PSI scale."""
    return {c.name: (drift_threshold if c.psi_scale and drift_threshold is not None else c.default_threshold)
            for c in CHECKS.values()}


# ------------------------------------------------------------------------------ inputs
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
    def _distinct_counts(self) -> Counter:
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


# ------------------------------------------------------------------------------ running
def run_checks(reference: Reference | Sample, window: Sample | Sequence[str], *, model: Any = None,
               thresholds: Mapping[str, float] | None = None, labels: Sequence[str | None] | None = None,
               checks: Sequence[str] | None = None, drift_threshold: float | None = None,
               min_window_size: int = MIN_WINDOW_SIZE, min_labels: int = MIN_LABELS, alpha: float = ALPHA,
               max_text_rows: int | None = TEXT_ROWS, positive_label: str = "spam", seed: int = 0) -> DriftReport:
    """Run the drift checks of ``window`` against ``reference``.

    ``window``: the messages and the champion's P(positive) for each (computed with ``model`` when
    missing). ``labels``: feedback labels aligned with the window's messages, ``None`` where there
    is none. ``thresholds``: per-check overrides of the declared thresholds (``drift_threshold``
    sets those on the PSI scale). ``checks``: run only these. A window with fewer than
    ``min_window_size`` messages is reported as insufficient data, without running any check.
    The text checks read at most ``max_text_rows`` messages, sampled uniformly (``None``: all);
    the prediction and feedback checks always read every message. ``positive_label`` is used only
    when ``reference`` is a plain :class:`Sample` (a :class:`Reference` carries its own).
    """
    if not isinstance(reference, Reference):
        reference = build_reference(reference.texts, proba=reference.proba, model=model,
                                    positive_label=positive_label, seed=seed)
    window = window if isinstance(window, Sample) else Sample(texts=window)
    texts = window.texts if isinstance(window.texts, list | tuple) else list(window.texts)  # e.g. a Series
    names = list(checks) if checks is not None else list(CHECKS)
    unknown = sorted(set(names) - set(CHECKS)) + sorted(set(thresholds or {}) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown drift check(s) {unknown}; known: {sorted(CHECKS)}")
    if len(texts) < min_window_size:
        reason = f"insufficient data: {len(texts)} messages in the window, fewer than {min_window_size}"
        return DriftReport(results=[], insufficient_data=True, n_window=len(texts), n_reference=reference.n,
                           skipped=dict.fromkeys(names, reason))
    proba = _window_proba(window, texts, model, reference.positive_label)
    y = _window_labels(labels, len(texts), reference.positive_label)
    limits = default_thresholds(drift_threshold) | dict(thresholds or {})
    rng = np.random.default_rng(seed)
    win = WindowStats(texts, proba, y, reference, rng, text_rows=max_text_rows)
    ctx = CheckContext(alpha=alpha, z=float(stats.norm.isf(alpha)), rng=rng)
    n_labelled = int(np.count_nonzero(y >= 0)) if y is not None else 0
    results, skipped = [], {}
    for name in names:
        check = CHECKS[name]
        why_not = _missing_input(check, reference, proba, n_labelled, min_labels)
        if why_not:
            skipped[name] = why_not
            continue
        score, floor, details = check.measure(reference, win, ctx)
        threshold = max(float(limits[name]), floor)
        details = {"declared_threshold": float(limits[name]), "noise_floor": round(floor, 6), **details}
        results.append(DriftResult(name, round(float(score), 6), round(threshold, 6), bool(score > threshold),
                                   details))
    log.info("drift checks on %d messages (%d labelled): %d of %d over their threshold %s; skipped %s",
             len(texts), n_labelled, sum(r.drifted for r in results), len(results),
             [r.name for r in results if r.drifted], sorted(skipped))
    return DriftReport(results=results, insufficient_data=False, n_window=len(texts), n_reference=reference.n,
                       n_labelled=n_labelled, skipped=skipped, text_rows=win.text_rows)


def _window_proba(window: Sample, texts: Sequence[str], model: Any, positive_label: str) -> np.ndarray | None:
    if window.proba is not None:
        proba = np.asarray(window.proba, dtype=float)
        if len(proba) != len(texts):
            raise ValueError(f"window proba has {len(proba)} values for {len(texts)} messages")
        bad = np.flatnonzero(~np.isfinite(proba) | (proba < 0) | (proba > 1))
        if len(bad):
            raise ValueError(f"window proba has {len(bad)} value(s) outside [0, 1] or not finite, e.g. "
                             f"{proba[bad[0]]!r} at position {bad[0]}; drop or re-score those predictions")
        return proba
    if model is None:
        return None
    import pandas as pd

    from autoretrain.training.families import positive_proba

    return positive_proba(model, pd.DataFrame({"text": [str(t) for t in texts]}), positive_label)


def _window_labels(labels: Sequence[str | None] | None, n: int, positive_label: str) -> np.ndarray | None:
    """1 = positive, 0 = negative, -1 = no feedback."""
    if labels is None:
        return None
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries for {n} window messages (use None for no feedback)")
    return np.array([-1 if v is None or v != v or v == "" else int(v == positive_label) for v in labels],
                    dtype=int)  # v != v: NaN, how pandas marks a missing label


def _missing_input(check: Check, reference: Reference, proba: Any, n_labelled: int, min_labels: int) -> str:
    if check.needs in ("proba", "labels") and proba is None:
        return "no window probabilities (pass window.proba or a model)"
    if check.needs == "proba" and reference.proba is None:
        return "the reference has no probabilities"
    if check.needs == "labels":
        if reference.metrics is None:
            return "the reference has no baseline evaluation (labels + proba, or metrics)"
        if n_labelled < min_labels:
            return f"{n_labelled} labelled messages in the window, fewer than {min_labels}"
    return ""


# ------------------------------------------------------------------------------ the decision
WindowOutcome = DriftReport | Mapping[str, Any] | bool | None


@dataclass(frozen=True)
class Decision:
    """Whether to retrain, with the reasons; ``streak`` = breaching windows at the end of the history."""

    retrain: bool
    reasons: list[str]
    streak: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"retrain": self.retrain, "reasons": list(self.reasons), "streak": self.streak}


def window_breaches(window: WindowOutcome, *, accuracy_floor: float,
                    checks: Collection[str] | None = None) -> list[str] | None:
    """Why one window breaches: ``[]`` when it does not, ``None`` when it carries no evidence.

    ``window`` is a :class:`DriftReport`, its ``as_dict()`` (e.g. read back from the metrics
    table), a plain breach flag, or ``None`` (no report). A check breaches when it drifted (or, in
    a dict without the flag, when ``score > threshold``); feedback accuracy below
    ``accuracy_floor`` breaches too. ``checks`` limits which checks count.
    """
    if window is None:
        return None
    if isinstance(window, bool | np.bool_):
        return ["breach flag set"] if window else []
    data = window.as_dict() if isinstance(window, DriftReport) else window
    if data.get("insufficient_data"):
        return None
    reasons = []
    for result in data.get("results", []):
        name = result["name"]
        if checks is not None and name not in checks:
            continue
        score, threshold = float(result["score"]), float(result["threshold"])
        drifted = result.get("drifted")
        if score > threshold if drifted is None else drifted:
            reasons.append(f"{name} {score:.4g} > threshold {threshold:.4g}")
        accuracy = (result.get("details") or {}).get("accuracy")
        if name == "feedback_accuracy" and accuracy is not None and accuracy < accuracy_floor:
            reasons.append(f"feedback accuracy {accuracy:.4f} < floor {accuracy_floor:.4f}")
    return reasons


def decide_retrain(history: Sequence[WindowOutcome], *, consecutive: int = 2, accuracy_floor: float = 0.93,
                   checks: Collection[str] | None = None) -> Decision:
    """Retrain when the last ``consecutive`` judged windows all breach (hysteresis against one-off noise).

    ``history`` is oldest first. Windows with insufficient data (or ``None``) carry no evidence:
    they neither extend nor break a streak. See :func:`window_breaches` for what a breach is.
    """
    if consecutive < 1:
        raise ValueError(f"consecutive={consecutive} must be at least 1")
    judged = [b for b in (window_breaches(w, accuracy_floor=accuracy_floor, checks=checks) for w in history)
              if b is not None]
    ignored = len(history) - len(judged)
    note = [f"{ignored} window(s) with insufficient data ignored"] if ignored else []
    if not judged:
        return Decision(False, ["no window with enough data to judge", *note])
    streak = 0
    for breaches in reversed(judged):
        if not breaches:
            break
        streak += 1
    latest = [f"latest window: {reason}" for reason in judged[-1]]
    if streak >= consecutive:
        return Decision(True, [f"{streak} consecutive breaching window(s), {consecutive} required", *latest,
                               *note], streak)
    if streak:
        return Decision(False, [f"{streak} consecutive breaching window(s), {consecutive} required: waiting",
                                *latest, *note], streak)
    return Decision(False, ["latest window: no check over its threshold, feedback accuracy not below the floor",
                            *note], 0)


# ------------------------------------------------------------------------------ Evidently report
def evidently_report_html(reference_df: Any, window_df: Any, path: str | Path, *, text_column: str = "text",
                          score_column: str = "score") -> Path:
    """Evidently's DataDriftPreset on the text and score columns, saved as one self-contained HTML file.

    Evidently is imported here, not at module level: the import alone takes seconds.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    for name, frame in (("reference_df", reference_df), ("window_df", window_df)):
        if text_column not in frame.columns:
            raise ValueError(f"{name} has no {text_column!r} column (columns: {list(frame.columns)})")
    has_score = score_column in reference_df.columns and score_column in window_df.columns
    columns = [text_column, score_column] if has_score else [text_column]
    definition = DataDefinition(text_columns=[text_column], numerical_columns=[score_column] if has_score else [])
    snapshot = Report([DataDriftPreset(columns=columns)]).run(
        Dataset.from_pandas(window_df[columns].reset_index(drop=True), data_definition=definition),
        Dataset.from_pandas(reference_df[columns].reset_index(drop=True), data_definition=definition))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


from autoretrain.monitoring import checks as drift_checks  # noqa: E402, F401 - registers the checks into CHECKS
