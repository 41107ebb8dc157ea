"""Evaluation plots as matplotlib figures (confusion matrix, ROC, PR, reliability diagram)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: workers and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from autoretrain import lineage  # noqa: E402
from autoretrain.training.evaluation import ECE_BINS, expected_calibration_error  # noqa: E402


def confusion_matrix_figure(metrics: dict[str, float], *, labels: Sequence[str]) -> Figure:
    """2x2 confusion matrix with counts; ``labels`` is (negative, positive)."""
    matrix = np.array([[metrics["tn"], metrics["fp"]], [metrics["fn"], metrics["tp"]]])
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:d}", ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black", fontsize=13)
    ax.set_xticks([0, 1], [f"pred {labels[0]}", f"pred {labels[1]}"])
    ax.set_yticks([0, 1], [f"true {labels[0]}", f"true {labels[1]}"])
    ax.set_title("Confusion matrix (hold-out)")
    fig.tight_layout()
    return fig


def roc_figure(y: np.ndarray, proba: np.ndarray, *, auc: float) -> Figure:
    """ROC curve of P(positive); ``y`` is 0/1."""
    fpr, tpr, _ = roc_curve(y, proba)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.plot(fpr, tpr, label=f"ROC-AUC {auc:.4f}")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (hold-out)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def pr_figure(y: np.ndarray, proba: np.ndarray, *, ap: float) -> Figure:
    """Precision-recall curve of P(positive); ``y`` is 0/1."""
    precision, recall, _ = precision_recall_curve(y, proba)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.plot(recall, precision, label=f"PR-AUC {ap:.4f}")
    ax.axhline(y.mean(), linestyle="--", color="grey", linewidth=0.8, label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (hold-out)", ylim=(0, 1.02))
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


def reliability_figure(y: np.ndarray, proba: np.ndarray, *, bins: int = ECE_BINS) -> Figure:
    """Reliability diagram: observed positive rate against mean P(positive) per bin, with counts."""
    index = np.minimum((proba * bins).astype(int), bins - 1)
    mean_p, rate, count = [], [], []
    for b in range(bins):
        mask = index == b
        if mask.any():
            mean_p.append(proba[mask].mean())
            rate.append(y[mask].mean())
            count.append(int(mask.sum()))
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8, label="perfect calibration")
    ax.plot(mean_p, rate, "o-", label=f"model (ECE {expected_calibration_error(y, proba, bins=bins):.4f})")
    for x, r, c in zip(mean_p, rate, count, strict=True):
        ax.annotate(str(c), (x, r), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.set(xlabel="mean predicted P(positive)", ylabel="observed positive rate",
           title="Reliability (hold-out, n per bin)", xlim=(0, 1), ylim=(0, 1.12))
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def evaluation_figures(y_true: Sequence[str] | np.ndarray, proba: np.ndarray, metrics: dict[str, float], *,
                       labels: Sequence[str], positive_label: str) -> dict[str, Figure]:
    """All four plots, keyed by the artifact file name they are logged under."""
    y = (np.asarray(y_true) == positive_label).astype(int)
    p = np.asarray(proba, dtype=float)
    negative = next(label for label in labels if label != positive_label)
    return {
        f"{lineage.PLOTS_DIR}/confusion_matrix.png": confusion_matrix_figure(metrics,
                                                                             labels=(negative, positive_label)),
        f"{lineage.PLOTS_DIR}/roc.png": roc_figure(y, p, auc=metrics["roc_auc"]),
        f"{lineage.PLOTS_DIR}/pr.png": pr_figure(y, p, ap=metrics["pr_auc"]),
        f"{lineage.PLOTS_DIR}/reliability.png": reliability_figure(y, p),
    }
