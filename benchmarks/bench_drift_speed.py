"""Speed of the full drift-check suite on a 1,000,000-message window, on one core, against Evidently.

The window is the bundled SMS corpus resampled to 1M messages with light perturbation (a random
number, a short reply word, a case change or a typo in most messages, so that most of the window is
distinct text). Its probabilities are the model's scores of the source messages plus a little
noise (in production they come from the prediction log; computing them is not part of the checks),
and 10 % of the messages carry a feedback label. The reference is the de-duplicated training split
with out-of-fold probabilities of a ``logreg`` model (built once per champion; timed separately).

Peer, in the same run and process: Evidently 0.7's ``DataDriftPreset`` on the same window's text and
score columns (``Report.run``; writing its HTML is timed separately). Everything runs on one core:
BLAS/OpenMP threads are limited to 1 and the process is pinned to one CPU.

Prints a table and, last, one JSON line with the figures.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy/scipy/sklearn are imported

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.special import expit, logit  # noqa: E402

from autoretrain.config import load_settings  # noqa: E402
from autoretrain.data.prepare import deduplicate, split  # noqa: E402
from autoretrain.data.sources import read_dataset  # noqa: E402
from autoretrain.monitoring.drift import run_checks  # noqa: E402
from autoretrain.monitoring.reference import Sample, build_reference, out_of_fold_proba  # noqa: E402
from autoretrain.training.families import positive_proba, search_family  # noqa: E402

REPLIES = ("ok", "pls", "thx", "lol", "2moro", "asap", "k", "cu", "gr8", "hmm")


def perturbed_window(corpus: pd.DataFrame, proba: np.ndarray, n: int, rng: np.random.Generator,
                     positive: str) -> tuple[list[str], np.ndarray, list[str | None]]:
    """``n`` resampled messages with light perturbation, their scores and 10 % feedback labels."""
    source = rng.integers(0, len(corpus), size=n)
    texts = corpus["text"].to_numpy()[source]
    kind = rng.choice(5, size=n, p=[0.4, 0.3, 0.03, 0.02, 0.25])  # as is, number, reply word, upper case, typo
    numbers = rng.integers(0, 1_000_000, size=n)
    replies = rng.integers(0, len(REPLIES), size=n)
    out = []
    for text, k, number, reply in zip(texts, kind, numbers, replies, strict=True):
        if k == 1:
            text = f"{text} {number}"
        elif k == 2:
            text = f"{REPLIES[reply]} {text}"
        elif k == 3:
            text = text.upper()
        elif k == 4 and len(text) > 3:
            cut = number % (len(text) - 1)
            text = text[:cut] + text[cut + 1] + text[cut] + text[cut + 2:]
        out.append(text)
    scores = expit(logit(np.clip(proba[source], 1e-6, 1 - 1e-6)) + rng.normal(0, 0.1, size=n))
    labelled = rng.random(n) < 0.1
    labels = [label if keep else None for label, keep in zip(corpus["label"].to_numpy()[source], labelled,
                                                               strict=True)]
    return out, scores, labels


def pin_one_core() -> str:
    """Pin this process to one CPU where the OS allows it."""
    if hasattr(os, "sched_setaffinity"):
        cpu = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity); threads limited to 1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--evidently-rows", type=int, default=None,
                        help="run Evidently on a sample of this many rows and extrapolate linearly "
                             "(default: the whole window)")
    parser.add_argument("--no-html", action="store_true", help="skip writing Evidently's HTML")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    pinned = pin_one_core()
    settings = load_settings()
    positive = settings.positive_label

    data = read_dataset(settings.resolved_data_uri(), labels=settings.labels)
    corpus = deduplicate(data.frame)[0]
    train, test = split(corpus, test_size=settings.test_size, seed=settings.random_seed)
    model = search_family("logreg", train, positive_label=positive, cv_folds=settings.cv_folds,
                          seed=settings.random_seed).pipeline
    oof = out_of_fold_proba(model, train["text"], train["label"], positive_label=positive)
    started = time.perf_counter()
    reference = build_reference(list(train["text"]), proba=oof, labels=list(train["label"]), model=model,
                                positive_label=positive)
    reference_seconds = time.perf_counter() - started
    # out-of-sample scores of every corpus message: out-of-fold for the training split, the model's
    # for the hold-out (in-sample scores would read as prediction drift)
    scores_by_text = dict(zip(train["text"], oof, strict=True)) | dict(
        zip(test["text"], positive_proba(model, test, positive), strict=True))
    corpus_scores = corpus["text"].map(scores_by_text).to_numpy()
    texts, scores, labels = perturbed_window(corpus, corpus_scores, args.rows, np.random.default_rng(0), positive)

    started = time.perf_counter()
    report = run_checks(reference, Sample(texts, scores), labels=labels, positive_label=positive)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    exact = run_checks(reference, Sample(texts, scores), labels=labels, positive_label=positive,
                       max_text_rows=None)
    ours_exact = time.perf_counter() - started

    import evidently
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    evidently_rows = min(args.evidently_rows or args.rows, args.rows)
    window_df = pd.DataFrame({"text": texts[:evidently_rows], "score": scores[:evidently_rows]})
    reference_df = pd.DataFrame({"text": list(train["text"]), "score": oof})
    definition = DataDefinition(text_columns=["text"], numerical_columns=["score"])
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset(columns=["text", "score"])]).run(
        Dataset.from_pandas(window_df, data_definition=definition),
        Dataset.from_pandas(reference_df, data_definition=definition))
    evidently_measured = time.perf_counter() - started
    html_seconds = None
    if not args.no_html:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            snapshot.save_html(str(Path(tmp) / "report.html"))
            html_seconds = time.perf_counter() - started
    extrapolated = evidently_rows < args.rows
    evidently_1m = evidently_measured * args.rows / evidently_rows

    print(f"window {args.rows:,} messages ({len(set(texts)):,} distinct), {sum(v is not None for v in labels):,} "
          f"labelled; reference {reference.n:,} messages; {pinned}; {os.cpu_count()} cores on the machine, "
          f"load average {os.getloadavg()[0]:.2f}; evidently {evidently.__version__}")
    print(f"{'check':22} {'score':>10} {'threshold':>10} {'drifted':>8} | {'exact score':>11} {'threshold':>10} "
          f"{'drifted':>8}")
    for r, e in zip(report.results, exact.results, strict=True):
        print(f"{r.name:22} {r.score:10.4f} {r.threshold:10.4f} {r.drifted!s:>8} | {e.score:11.4f} "
              f"{e.threshold:10.4f} {e.drifted!s:>8}")
    print(f"ours: full suite {ours:.1f}s with the text checks on a uniform sample of {report.text_rows:,} messages "
          f"(default); {ours_exact:.1f}s reading all {exact.text_rows:,} (exact); reference prepared once per "
          f"champion: {reference_seconds:.1f}s")
    how = f"measured on {evidently_rows:,} rows, extrapolated linearly" if extrapolated else "measured"
    print(f"evidently DataDriftPreset (Report.run): {evidently_1m:.1f}s ({how}); "
          f"save_html {html_seconds if html_seconds is None else round(html_seconds, 1)}s")
    figures = {
        "ours_seconds_1m": round(ours, 2), "evidently_seconds_1m": round(evidently_1m, 2),
        "speedup": round(evidently_1m / ours, 1), "ours_text_rows": report.text_rows,
        "ours_exact_seconds_1m": round(ours_exact, 2), "speedup_exact": round(evidently_1m / ours_exact, 1),
        "rows": args.rows, "evidently_rows": evidently_rows,
        "extrapolated": extrapolated,
        "evidently_html_seconds": None if html_seconds is None else round(html_seconds, 1),
        "reference_build_seconds": round(reference_seconds, 2), "checks": len(report.results),
        "drifted_checks": [r.name for r in report.results if r.drifted], "one_core": pinned,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
