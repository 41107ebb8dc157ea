"""localstack: start, health, stop of native processes (the stack of `make up` / `make demo`)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from devstack import localstack
from devstack.localstack import Service, StackError

# a parent that starts a child in its own session, as Airflow's task supervisor does
PARENT = ("import subprocess, sys, time; "
          "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True); "
          "open(sys.argv[1], 'w').write(str(child.pid)); time.sleep(300)")


def _wait_for(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.05)
    return path.read_text()


def test_stop_reaches_children_in_their_own_session(tmp_path: Path) -> None:
    child_file = tmp_path / "child-pid.txt"
    service = Service("parent", [sys.executable, "-c", PARENT, str(child_file)])
    pids = localstack.start([service], tmp_path, dict(os.environ))
    localstack.wait_healthy([service], tmp_path, timeout=20)
    child = int(_wait_for(child_file))
    assert localstack.running(tmp_path) == {"parent": pids["parent"]}
    assert os.getsid(child) != os.getsid(pids["parent"])  # killpg alone would miss it

    assert localstack.stop(tmp_path, timeout=10) == ["parent"]
    for pid in (pids["parent"], child):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert localstack.running(tmp_path) == {} and not (tmp_path / "parent.pid").exists()


def test_start_is_idempotent_and_a_crash_names_its_log(tmp_path: Path) -> None:
    sleeper = Service("sleeper", [sys.executable, "-c", "import time; time.sleep(300)"])
    first = localstack.start([sleeper], tmp_path, dict(os.environ))
    assert localstack.start([sleeper], tmp_path, dict(os.environ)) == first  # already running: not started twice
    crash = Service("crash", [sys.executable, "-c", "import sys; print('bad config: no such file'); sys.exit(3)"],
                    health_url="http://127.0.0.1:9/")  # never answers: only the exit can end the wait
    localstack.start([crash], tmp_path, dict(os.environ))
    with pytest.raises(StackError, match="(?s)crash exited during start-up.*bad config: no such file"):
        localstack.wait_healthy([crash], tmp_path, timeout=20)
    assert localstack.stop(tmp_path, timeout=10) == ["sleeper"]


def test_health_url_that_never_answers_times_out_with_the_name(tmp_path: Path) -> None:
    service = Service("mute", [sys.executable, "-c", "import time; time.sleep(300)"], health_url="http://127.0.0.1:9/")
    localstack.start([service], tmp_path, dict(os.environ))
    try:
        with pytest.raises(StackError, match="not healthy after 2 s: mute"):
            localstack.wait_healthy([service], tmp_path, timeout=2)
    finally:
        localstack.stop(tmp_path, timeout=10)
