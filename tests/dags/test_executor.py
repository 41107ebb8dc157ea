"""PreloadingLocalExecutor: the project's executor is LocalExecutor plus the ML stack imported before the fork."""

from __future__ import annotations

import subprocess
import sys

from autoretrain.airflow.executor import PRELOAD, PreloadingLocalExecutor, preload

PROBE = """
import sys
from airflow.executors.executor_loader import ExecutorLoader
executor = ExecutorLoader.get_default_executor()
assert type(executor).__name__ == "PreloadingLocalExecutor", type(executor)
assert "mlflow.sklearn" not in sys.modules
executor.start()
try:
    assert len(executor.workers) == executor.parallelism, executor.workers
    print("PRELOADED", sorted(m for m in {PRELOAD!r} if m in sys.modules))
finally:
    executor.end()
"""


def test_preload_reports_what_it_could_not_import() -> None:
    missing, seconds = preload(("json", "no_such_module_autoretrain"))
    assert missing == ["no_such_module_autoretrain"] and seconds >= 0


def test_the_configured_executor_preloads_before_forking_its_workers() -> None:
    assert issubclass(PreloadingLocalExecutor, __import__("airflow.executors.local_executor",
                                                           fromlist=["LocalExecutor"]).LocalExecutor)
    probe = subprocess.run([sys.executable, "-c", PROBE.format(PRELOAD=PRELOAD)], capture_output=True, text=True,
                           timeout=180)
    assert probe.returncode == 0, probe.stderr[-3000:]
    (line,) = [line for line in probe.stdout.splitlines() if line.startswith("PRELOADED ")]
    assert line == f"PRELOADED {sorted(PRELOAD)}"
