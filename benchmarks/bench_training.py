"""Training sweep benchmark on the bundled SMS Spam Collection.

Runs every model family's search (stratified CV, calibration where it helps) the way the training
DAG does, selects the best by CV F1 (tie-break MCC), and evaluates it on the de-duplicated,
stratified 20 % hold-out. Peer, in the same run: scikit-learn's GridSearchCV over the same grid and
folds, refitting the TF-IDF features for every candidate (the textbook approach); the chosen
hyperparameters must agree, and the ratio of sweep times is reported.

Prints a table and, last, one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

from sklearn.base import clone
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from autoretrain.config import KNOWN_FAMILIES, load_settings
from autoretrain.data.prepare import deduplicate, split
from autoretrain.data.sources import read_dataset
from autoretrain.training.evaluation import compute_metrics, select_best
from autoretrain.training.families import build_pipeline, get_family, make_folds, positive_proba, search_family


def peer_gridsearch(train, family: str, *, cv_folds: int, seed: int, positive: str) -> tuple[dict, float]:
    """GridSearchCV on the whole pipeline (features refit per candidate and fold)."""
    spec = get_family(family)
    started = time.perf_counter()
    search = GridSearchCV(build_pipeline(clone(spec.make(seed))), {f"clf__{k}": v for k, v in spec.grid.items()},
                          scoring=make_scorer(f1_score, pos_label=positive),
                          cv=StratifiedKFold(cv_folds, shuffle=True, random_state=seed), refit=False, n_jobs=1)
    search.fit(train[["text"]], train["label"].to_numpy())
    params = {k.removeprefix("clf__"): v for k, v in search.best_params_.items()}
    return params, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(KNOWN_FAMILIES))
    parser.add_argument("--no-peer", action="store_true", help="skip the GridSearchCV peer")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings()
    families = args.families.split(",")
    positive = settings.positive_label

    data = read_dataset(settings.resolved_data_uri(), labels=settings.labels)
    deduped, report = deduplicate(data.frame)
    train, test = split(deduped, test_size=settings.test_size, seed=settings.random_seed)

    started = time.perf_counter()
    folds = make_folds(train, cv_folds=settings.cv_folds, seed=settings.random_seed)
    results = {f: search_family(f, train, positive_label=positive, cv_folds=settings.cv_folds,
                                seed=settings.random_seed, folds=folds) for f in families}
    sweep_seconds = time.perf_counter() - started
    selection = select_best({f: r.cv_metrics for f, r in results.items()}, metric=settings.target_metric,
                            tie_break=settings.tie_break_metric)
    holdout = {f: compute_metrics(test["label"], positive_proba(r.pipeline, test, positive),
                                  positive_label=positive) for f, r in results.items()}

    peer_seconds, agree = None, None
    if not args.no_peer:
        peer_seconds, agree = 0.0, True
        for f in families:
            params, seconds = peer_gridsearch(train, f, cv_folds=settings.cv_folds, seed=settings.random_seed,
                                              positive=positive)
            peer_seconds += seconds
            if params != results[f].params:
                print(f"note: {f}: GridSearchCV chose {params}, the sweep chose {results[f].params}")
            agree = agree and params == results[f].params

    print(f"SMS Spam Collection: {report.rows_in} rows, {report.rows_out} after de-duplication; "
          f"train {len(train)}, hold-out {len(test)} ({int(test['label'].eq(positive).sum())} {positive}); "
          f"{settings.cv_folds}-fold CV; {os.cpu_count()} cores")
    header = (f"{'family':15} {'params':18} {'calib':7} {'cv_f1':>7} {'cv_mcc':>7} | {'f1':>7} {'mcc':>7} "
              f"{'fpr':>7} {'ece':>7} {'acc':>7} {'secs':>6}")
    print(header)
    print("-" * len(header))
    for f, r in results.items():
        h = holdout[f]
        mark = " *" if f == selection.winner else ""
        print(f"{f:15} {json.dumps(r.params):18} {r.calibration:7} {r.cv_metrics['f1']:7.4f} "
              f"{r.cv_metrics['mcc']:7.4f} | {h['f1']:7.4f} {h['mcc']:7.4f} {h['fpr']:7.4f} {h['ece']:7.4f} "
              f"{h['accuracy']:7.4f} {r.fit_seconds:6.1f}{mark}")
    print(f"* selected by CV {settings.target_metric} (tie-break {settings.tie_break_metric}); "
          "hold-out columns are for information, selection never sees them")
    best = holdout[selection.winner]
    figures = {
        "selected": selection.winner, "spam_f1": round(best["f1"], 4), "mcc": round(best["mcc"], 4),
        "ham_fpr": round(best["fpr"], 4), "ece": round(best["ece"], 4), "accuracy": round(best["accuracy"], 4),
        "roc_auc": round(best["roc_auc"], 4), "pr_auc": round(best["pr_auc"], 4),
        "holdout_rows": len(test), "sweep_seconds": round(sweep_seconds, 1), "families": families,
        "gridsearch_seconds": round(peer_seconds, 1) if peer_seconds is not None else None,
        "speedup_vs_gridsearch": round(peer_seconds / sweep_seconds, 2) if peer_seconds else None,
        "same_params_as_gridsearch": agree,
    }
    if peer_seconds is not None:
        print(f"peer GridSearchCV (features refit per candidate), same grid and folds: {peer_seconds:.1f}s "
              f"vs {sweep_seconds:.1f}s (x{peer_seconds / sweep_seconds:.2f}); same params chosen: {agree}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
