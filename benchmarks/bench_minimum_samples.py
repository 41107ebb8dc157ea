"""Where does ``minimum_samples`` come from? A learning curve against the quality gates.

For each sample size, draws ``--repeats`` random samples of that many rows from the bundled SMS
Spam Collection (5,574 messages), then does what a training run does with them: de-duplicate, split
80/20 stratified, fit a calibrated linear SVM on TF-IDF features, and check the hold-out against
the absolute gates (accuracy, F1 of spam, ECE from the settings). It also scores each model on all
the messages it never saw. The smallest size at which every sample passes the gates is the
justification for the ``minimum_samples`` default (docs/adr/0002-minimum-samples.md).

Prints a table and, last, one JSON line with the figures. ~3 minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time

from sklearn.calibration import CalibratedClassifierCV
from sklearn.svm import LinearSVC

from autoretrain.config import load_settings
from autoretrain.data.prepare import deduplicate, split
from autoretrain.data.sources import read_dataset
from autoretrain.training.evaluation import compute_metrics
from autoretrain.training.families import build_pipeline, positive_proba

SIZES = (250, 500, 750, 1000, 1500, 2000, 3000)


def one_sample(full, n: int, seed: int, settings) -> tuple[bool, float, float]:
    """Train on a random ``n``-row sample; (passes the gates, own hold-out F1, F1 on unseen rows)."""
    sample = full.sample(n=n, random_state=seed)
    train, test = split(deduplicate(sample)[0], test_size=settings.test_size, seed=settings.random_seed)
    model = CalibratedClassifierCV(LinearSVC(C=1.0, random_state=settings.random_seed), method="sigmoid", cv=3)
    pipeline = build_pipeline(model).fit(train[["text"]], train["label"])
    positive = settings.positive_label
    own = compute_metrics(test["label"], positive_proba(pipeline, test, positive), positive_label=positive,
                          threshold=settings.decision_threshold)
    unseen = deduplicate(full.drop(sample.index))[0]
    rest = compute_metrics(unseen["label"], positive_proba(pipeline, unseen, positive), positive_label=positive,
                           threshold=settings.decision_threshold)
    passes = (own["accuracy"] >= settings.accuracy_min and own["f1"] >= settings.f1_min
              and own["ece"] <= settings.ece_max)
    return passes, own["f1"], rest["f1"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="random samples per size")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated sample sizes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings()
    full = read_dataset(settings.resolved_data_uri(), labels=settings.labels).frame
    started = time.perf_counter()
    rows = []
    print(f"{'rows':>6} {'gate pass':>10} {'own F1 mean':>12} {'own F1 min':>11} {'unseen F1 mean':>15} "
          f"{'unseen F1 min':>14}")
    for n in (int(s) for s in args.sizes.split(",")):
        runs = [one_sample(full, n, seed, settings) for seed in range(args.repeats)]
        passed = sum(r[0] for r in runs)
        own, unseen = [r[1] for r in runs], [r[2] for r in runs]
        rows.append({"rows": n, "gate_pass": passed, "own_f1_mean": round(statistics.mean(own), 4),
                     "own_f1_min": round(min(own), 4), "unseen_f1_mean": round(statistics.mean(unseen), 4),
                     "unseen_f1_min": round(min(unseen), 4)})
        r = rows[-1]
        print(f"{n:6d} {passed:>5d}/{args.repeats:<4d} {r['own_f1_mean']:12.4f} {r['own_f1_min']:11.4f} "
              f"{r['unseen_f1_mean']:15.4f} {r['unseen_f1_min']:14.4f}", flush=True)
    always = [r["rows"] for r in rows if r["gate_pass"] == args.repeats]
    smallest = next((r["rows"] for r in rows if all(s in always for s in
                                                    [x["rows"] for x in rows if x["rows"] >= r["rows"]])), None)
    print(f"smallest size from which every sample passes the gates: {smallest} "
          f"(configured minimum_samples: {settings.minimum_samples})")
    print(json.dumps({"corpus_rows": len(full), "repeats": args.repeats, "sizes": rows,
                      "smallest_always_passing": smallest, "minimum_samples": settings.minimum_samples,
                      "seconds": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
