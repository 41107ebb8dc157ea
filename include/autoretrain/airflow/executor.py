"""``PreloadingLocalExecutor``: Airflow's LocalExecutor, with the ML stack imported once.

Every AutoRetrain task imports pandas, scikit-learn and MLflow before it does any work: 5-7 s per
task on 2 cores, most of a short task's duration (a gate check, an alias move) and ~50 s of a
retrain run's critical path. LocalExecutor forks its worker processes from the scheduler, and each
worker forks one process per task (the Task SDK supervisor), so modules imported in the scheduler
before the workers start are already loaded in every task process.

This executor imports them in :meth:`start`, before the workers are forked, and is otherwise the
LocalExecutor unchanged. It is used with ``[core] executor =
autoretrain.airflow.executor.PreloadingLocalExecutor`` (the project's airflow.cfg); with the
"spawn" start method (not Linux's default) nothing is gained and nothing breaks.
"""

from __future__ import annotations

import importlib
import time
import warnings

from airflow.executors.local_executor import LocalExecutor

# Third-party only: importing them has no side effects beyond memory (~300 MB shared copy-on-write).
PRELOAD = ("numpy", "pandas", "scipy.stats", "sklearn.base", "sklearn.model_selection", "sklearn.linear_model",
           "sklearn.feature_extraction.text", "sklearn.calibration", "sklearn.metrics", "mlflow",
           "mlflow.tracking", "mlflow.sklearn", "mlflow.models", "skops.io")


def preload(modules: tuple[str, ...] = PRELOAD) -> tuple[list[str], float]:
    """Import ``modules``; return those that could not be imported and the seconds it took."""
    started = time.monotonic()
    missing = []
    with warnings.catch_warnings():  # skops's import-time module scan: see registry.quiet_skops_import
        warnings.filterwarnings("ignore", module=r"skops\.")
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError:
                missing.append(name)
    return missing, time.monotonic() - started


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor whose forked task processes start with pandas, scikit-learn and MLflow loaded."""

    def start(self) -> None:
        if self.is_mp_using_fork:
            missing, seconds = preload()
            self.log.info("preloaded %d modules for task processes in %.1f s%s", len(PRELOAD) - len(missing),
                          seconds, f" (not importable: {', '.join(missing)})" if missing else "")
        super().start()
