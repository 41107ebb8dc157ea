"""The drift checks themselves, registered into :data:`autoretrain.monitoring.registry.CHECKS` on import.

Each ``measure`` returns ``(score, noise_floor, details)``; :func:`autoretrain.monitoring.drift.run_checks`
turns that into a :class:`~autoretrain.monitoring.drift.DriftResult` with the effective threshold
``max(declared threshold, noise floor)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import stats

from autoretrain.monitoring import textstats as ts
from autoretrain.monitoring.reference import (
    ACTIVE_SHARE,
    DOMAIN_ROWS,
    DRIFT_THRESHOLD,
    EMERGING,
    NULL_LABELS,
    NULL_ROUNDS,
    PERMUTATIONS,
    CheckContext,
    Reference,
    WindowStats,
    distinct_sample,
    hashed_features,
    tfidf_rows,
)
from autoretrain.monitoring.registry import Measure, register_check
from autoretrain.training.evaluation import ECE_BINS

Measured = tuple[float, float, dict[str, Any]]


# ------------------------------------------------------------------------------ text checks
@register_check("vocabulary_oov", default_threshold=0.03, needs="texts",
                description="rise of the out-of-vocabulary token rate against the model's word vocabulary")
def _vocabulary_oov(ref: Reference, win: WindowStats, ctx: CheckContext) -> Measured:
    tokens, w = win.tokens, win.weights
    oov = (np.arange(tokens.counts.shape[1]) >= ref.n_model).astype(float)
    per_message = tokens.counts @ oov
    rate = float(per_message @ w / max(tokens.lengths @ w, 1))
    floor = ctx.z * np.sqrt(ts.ratio_variance(per_message, tokens.lengths, w) + ref.oov_variance)
    return rate - ref.oov_rate, float(floor), {
        "oov_rate": round(rate, 6), "reference_oov_rate": round(ref.oov_rate, 6),
        "messages_with_oov": round(float((per_message > 0) @ w / w.sum()), 6),
        "vocabulary_size": ref.n_model - 1}


@register_check("emerging_terms", default_threshold=0.01, needs="texts",
                description="share of distinct window messages holding a new or surging token (e.g. a spam campaign)")
def _emerging_terms(ref: Reference, win: WindowStats, ctx: CheckContext) -> Measured:
    n, big_n = len(win.distinct), ref.n
    df_w = win.tokens.doc_freq
    df_r = np.zeros(len(df_w))
    df_r[:len(ref.tokens.doc_freq)] = ref.tokens.doc_freq
    null_share = (df_r + 1) / (big_n + 2)  # Laplace: a token never seen still has a small chance
    share = df_w / n
    tested = np.flatnonzero((df_w >= EMERGING["min_count"]) & (share >= EMERGING["min_share"])
                            & (share / null_share >= EMERGING["min_lift"]))
    # two-sample test of equal shares, exact and conditional on the token's total count: of the
    # w + r messages holding it, how likely are >= w in the window if both shares were equal?
    # (unlike a one-sample test against r / N, it knows that the reference's count is noisy too)
    p_values = stats.binom.sf(df_w[tested] - 1, df_w[tested] + df_r[tested], n / (n + big_n))
    n_candidates = max(int(np.count_nonzero(df_w >= EMERGING["min_count"])), 1)
    emerging = tested[p_values < ctx.alpha / n_candidates]  # Bonferroni over the tokens that could be
    holding: np.ndarray | list[bool] = (np.asarray(win.tokens.counts[:, emerging].sum(axis=1)).ravel() > 0
                                        if len(emerging) else [])
    score = float(np.mean(holding)) if len(emerging) else 0.0
    wanted = set(emerging.tolist())
    words = {t: i for t, i in win.ids.items() if i in wanted}
    top = sorted(words.items(), key=lambda kv: (-df_w[kv[1]], kv[0]))[:int(EMERGING["top"])]
    terms = [{"term": t, "window_count": int(df_w[i]), "window_share": round(float(share[i]), 6),
              "reference_count": int(df_r[i]), "lift": round(float(share[i] / null_share[i]), 2),
              "new": bool(i >= ref.n_model)} for t, i in top]
    return score, 0.0, {"emerging_terms": terms, "n_emerging": len(emerging), "distinct_messages": n, **EMERGING}


@register_check("vocabulary_jaccard", default_threshold=0.05, needs="texts",
                description="fall of the Jaccard index of the active vocabularies (tokens in >= 1 % of "
                            "messages) below its permutation-null mean")
def _vocabulary_jaccard(ref: Reference, win: WindowStats, ctx: CheckContext) -> Measured:
    sample = win.tokens.counts[win.sample]
    counts = ref.tokens.counts
    reference = sp.csr_matrix((counts.data, counts.indices, counts.indptr), shape=(ref.n, sample.shape[1]))
    pooled = sp.vstack([reference, sample]).tocsr()
    pooled.data[:] = 1.0
    n_r, n_w = ref.n, sample.shape[0]

    def jaccard(df_ref: np.ndarray, df_win: np.ndarray) -> float:
        return ts.jaccard(df_ref / n_r >= ACTIVE_SHARE, df_win / n_w >= ACTIVE_SHARE)

    df_win = np.asarray(sample.astype(bool).sum(axis=0)).ravel()
    df_ref = np.asarray(pooled.sum(axis=0)).ravel() - df_win
    observed = jaccard(df_ref, df_win)
    null = ts.permutation_null(pooled, n_w, jaccard, rounds=PERMUTATIONS, rng=ctx.rng)
    return float(null.mean() - observed), float(ctx.z * null.std()), {
        "jaccard": round(observed, 6), "null_jaccard_mean": round(float(null.mean()), 6),
        "active_reference": int(np.count_nonzero(df_ref / n_r >= ACTIVE_SHARE)),
        "active_window": int(np.count_nonzero(df_win / n_w >= ACTIVE_SHARE)),
        "active_share": ACTIVE_SHARE, "window_rows": n_w}


@register_check("tfidf_js", default_threshold=0.02, needs="texts",
                description="Jensen-Shannon divergence (bits) of the TF-IDF term mass over the model's word "
                            "features, above its permutation-null mean")
def _tfidf_js(ref: Reference, win: WindowStats, ctx: CheckContext) -> Measured:
    full = ref.vectorizer.transform([win.distinct[i] for i in win.sample])
    sample = tfidf_rows(full, ref.tfidf_columns)
    pooled = sp.vstack([ref.tfidf, sample]).tocsr()
    mass_r = np.asarray(ref.tfidf.sum(axis=0)).ravel()
    mass_w = np.asarray(sample.sum(axis=0)).ravel()
    observed = ts.js_divergence(mass_r, mass_w) if mass_w.sum() > 0 else 1.0
    null = ts.permutation_null(pooled, sample.shape[0],
                               lambda a, b: ts.js_divergence(a, b) if b.sum() > 0 else 1.0,
                               rounds=PERMUTATIONS, rng=ctx.rng)
    names = ref.vectorizer.get_feature_names_out()[ref.tfidf_columns]
    share_r, share_w = mass_r / mass_r.sum(), mass_w / max(mass_w.sum(), 1e-12)
    gained = {str(names[i]): float(share_w[i] - share_r[i]) for i in np.argsort(share_r - share_w)[:10]}
    return observed - float(null.mean()), float(ctx.z * null.std()), {
        "js": round(observed, 6), "null_js_mean": round(float(null.mean()), 6),
        "null_js_std": round(float(null.std()), 6), "window_rows": sample.shape[0],
        "gained_mass": {k: round(v, 5) for k, v in ts.top_items(gained, 10)}}


@register_check("text_length_psi", default_threshold=DRIFT_THRESHOLD, needs="texts", psi_scale=True,
                description="PSI of the message length in characters (reference-decile bins)")
def _text_length_psi(ref: Reference, win: WindowStats, ctx: CheckContext) -> Measured:
    value, n_bins = ts.psi(ref.chars["length"], win.chars["length"], weights=win.weights)
    return value, ts.psi_noise_floor(ref.n, len(win.distinct), n_bins, alpha=ctx.alpha), {
        "bins": n_bins, "reference_mean": round(float(np.mean(ref.chars["length"])), 2),
        "window_mean": round(float(win.chars["length"] @ win.weights / win.weights.sum()), 2)}


@register_check("character_class_psi", default_threshold=DRIFT_THRESHOLD, needs="texts", psi_scale=True,
                description="largest PSI of the per-message share of digits, capitals, punctuation, "
                            "currency signs and non-ASCII characters")
def _character_class_psi(ref: Reference, win: WindowStats, ctx: CheckContext) -> Measured:
    per_class: dict[str, float] = {}
    floors: dict[str, float] = {}
    for name in ts.CHAR_CLASSES:
        value, n_bins = ts.psi(ref.chars[name], win.chars[name], weights=win.weights)
        per_class[name] = round(value, 6)
        floors[name] = ts.psi_noise_floor(ref.n, len(win.distinct), n_bins, alpha=ctx.alpha / len(ts.CHAR_CLASSES))
    worst = max(per_class, key=per_class.__getitem__)
    means = {name: round(float(win.chars[name] @ win.weights / win.weights.sum()), 6) for name in ts.CHAR_CLASSES}
    return per_class[worst], floors[worst], {"worst_class": worst, "psi": per_class, "window_mean_share": means}


@register_check("domain_classifier", default_threshold=0.55, needs="texts",
                description="cross-validated ROC-AUC of a classifier telling window from reference messages")
def _domain_classifier(ref: Reference, win: WindowStats, ctx: CheckContext) -> Measured:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    window = hashed_features(distinct_sample(win.distinct, DOMAIN_ROWS, ctx.rng))
    x = sp.vstack([ref.domain, window]).tocsr()
    y = np.r_[np.zeros(ref.domain.shape[0]), np.ones(window.shape[0])]
    n_r, n_w = ref.domain.shape[0], window.shape[0]
    folds = min(3, n_w, n_r)
    if folds < 2:
        return 0.5, 1.0, {"reason": "fewer than 2 distinct messages on one side"}
    clf = LogisticRegression(C=1.0, solver="liblinear", class_weight="balanced")
    scores = cross_val_predict(clf, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=0),
                               method="decision_function")
    auc = float(roc_auc_score(y, scores))
    null_sd = np.sqrt((n_r + n_w + 1) / (12 * n_r * n_w))  # ROC-AUC of a random score (Mann-Whitney)
    return auc, float(0.5 + ctx.z * null_sd), {"roc_auc": round(auc, 6), "reference_rows": n_r,
                                                "window_rows": n_w, "folds": folds}


# ------------------------------------------------------------------------------ prediction checks
def _scores(ref: Reference, win: WindowStats) -> tuple[np.ndarray, np.ndarray]:
    """P(positive) of the reference and the window (run_checks runs a ``needs="proba"`` check only with both)."""
    if ref.proba is None or win.proba is None:
        raise ValueError("a prediction check needs probabilities of the reference and of the window")
    return ref.proba, win.proba


@register_check("prediction_psi", default_threshold=DRIFT_THRESHOLD, needs="proba", psi_scale=True,
                description="PSI of P(positive) over reference-decile bins")
def _prediction_psi(ref: Reference, win: WindowStats, ctx: CheckContext) -> Measured:
    ref_p, win_p = _scores(ref, win)
    value, n_bins = ts.psi(ref_p, win_p)
    return value, ts.psi_noise_floor(len(ref_p), len(win_p), n_bins, alpha=ctx.alpha), {"bins": n_bins}


@register_check("prediction_ks", default_threshold=0.1, needs="proba",
                description="two-sample Kolmogorov-Smirnov statistic D of P(positive)")
def _prediction_ks(ref: Reference, win: WindowStats, ctx: CheckContext) -> Measured:
    ref_p, win_p = _scores(ref, win)
    result = stats.ks_2samp(ref_p, win_p, method="asymp")
    return float(result.statistic), ts.ks_critical_value(len(ref_p), len(win_p), alpha=ctx.alpha), {
        "p_value": float(result.pvalue)}


@register_check("positive_rate", default_threshold=0.1, needs="proba",
                description="absolute change of the predicted positive rate (at the decision threshold)")
def _positive_rate(ref: Reference, win: WindowStats, ctx: CheckContext) -> Measured:
    ref_p, win_p = _scores(ref, win)
    r = float(np.mean(ref_p >= ref.decision_threshold))
    w = float(np.mean(win_p >= ref.decision_threshold))
    m, n = len(ref_p), len(win_p)
    pooled = (r * m + w * n) / (m + n)
    floor = ctx.z * np.sqrt(pooled * (1 - pooled) * (1 / m + 1 / n))
    return abs(w - r), float(floor), {"window_rate": round(w, 6), "reference_rate": round(r, 6),
                                      "decision_threshold": ref.decision_threshold}


# ------------------------------------------------------------------------------ feedback checks
def _labelled(win: WindowStats) -> tuple[np.ndarray, np.ndarray]:
    if win.labels is None or win.proba is None:  # run_checks runs a ``needs="labels"`` check only with both
        raise ValueError("a feedback check needs the window's labels and probabilities")
    mask = win.labels >= 0
    return win.labels[mask], win.proba[mask]


def _null_metrics(ref: Reference, n: int, ctx: CheckContext) -> dict[str, np.ndarray] | None:
    """Accuracy, F1 and ECE of NULL_ROUNDS bootstrap samples of n reference (label, proba) pairs."""
    if ref.labels is None or ref.proba is None:  # the reference's labels are aligned with its proba
        return None
    idx = ctx.rng.integers(0, len(ref.labels), size=(NULL_ROUNDS, n))
    return _batch_metrics(ref.labels[idx], ref.proba[idx], ref.decision_threshold)


def _batch_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Accuracy, F1 of the positive class and ECE of each row of (rounds x n) labels and scores."""
    pred = p >= threshold
    tp = np.sum(pred & (y == 1), axis=1)
    fp = np.sum(pred & (y == 0), axis=1)
    fn = np.sum(~pred & (y == 1), axis=1)
    rounds, n = y.shape
    bins = np.minimum((p * ECE_BINS).astype(int), ECE_BINS - 1) + ECE_BINS * np.arange(rounds)[:, None]
    gap = np.abs(np.bincount(bins.ravel(), weights=y.ravel().astype(float), minlength=rounds * ECE_BINS)
                 - np.bincount(bins.ravel(), weights=p.ravel(), minlength=rounds * ECE_BINS))
    return {"accuracy": np.mean(pred == (y == 1), axis=1),
            "f1": np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros(rounds), where=(2 * tp + fp + fn) > 0),
            "ece": gap.reshape(rounds, ECE_BINS).sum(axis=1) / n}


def _feedback(metric: str, *, worse_when_higher: bool) -> Measure:
    """A check of ``metric`` on the labelled messages against the reference's evaluation.

    The noise floor comes from the same metric on bootstrap samples of the reference's (label,
    score) pairs at the window's size (capped at NULL_LABELS, then scaled by 1/sqrt(n)): it holds
    the small-sample bias (ECE grows, F1 shrinks on few labels) plus ``z`` standard deviations of
    the window's and the baseline's sampling noise.
    """
    def measure(ref: Reference, win: WindowStats, ctx: CheckContext) -> Measured:
        y, p = _labelled(win)
        n = len(y)
        value = float(_batch_metrics(y[None, :], p[None, :], ref.decision_threshold)[metric][0])
        if ref.metrics is None:  # run_checks runs a ``needs="labels"`` check only with a baseline
            raise ValueError("a feedback check needs the reference's baseline evaluation")
        base = float(ref.metrics[metric])
        sign = 1 if worse_when_higher else -1
        simulated = min(n, NULL_LABELS)
        null = _null_metrics(ref, simulated, ctx)
        if null is None or ref.labels is None:  # only baseline metrics, no pairs: binomial floor for accuracy
            floor = ctx.z * np.sqrt(base * (1 - base) / n) if metric == "accuracy" else 0.0
        else:
            scale = simulated / n
            bias = sign * (null[metric].mean() - base) * np.sqrt(scale)
            floor = bias + ctx.z * null[metric].std() * np.sqrt(scale + simulated / len(ref.labels))
        return sign * (value - base), float(max(floor, 0.0)), {
            metric: round(value, 6), f"baseline_{metric}": round(base, 6), "n_labelled": n,
            "window_positive_share": round(float(y.mean()), 6)}
    return measure


register_check("feedback_accuracy", default_threshold=0.02, needs="labels",
               description="drop of accuracy on feedback labels against the champion's evaluation")(
    _feedback("accuracy", worse_when_higher=False))
register_check("feedback_f1", default_threshold=0.05, needs="labels",
               description="drop of the positive-class F1 on feedback labels against the champion's evaluation")(
    _feedback("f1", worse_when_higher=False))
register_check("calibration_ece", default_threshold=0.03, needs="labels",
               description="rise of the expected calibration error (15 bins) on feedback labels")(
    _feedback("ece", worse_when_higher=True))
