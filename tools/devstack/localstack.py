"""Start, watch and stop the long-running processes of a native (no Docker) AutoRetrain stack.

`make up` / `make demo` run Airflow's components, an MLflow server and the prediction service as
plain processes; the Celery integration test runs the same components with a CeleryExecutor
environment. Each process gets its own session (so stopping it stops its children too), a log
file and a pid file under one state folder, which is all `make down` needs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A process of the stack exited or did not become healthy in time."""


@dataclass(frozen=True)
class Service:
    """One long-running process: its command, extra environment and how to tell it is up."""

    name: str
    argv: Sequence[str]
    health_url: str | None = None  # answered with 2xx once the service is ready; None: alive is enough
    env: Mapping[str, str] = field(default_factory=dict)


def _pid_file(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.pid"


def log_file(state_dir: Path, name: str) -> Path:
    return state_dir / "logs" / f"{name}.log"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def running(state_dir: Path) -> dict[str, int]:
    """Names and pids of the stack's processes that are alive (stale pid files are removed)."""
    alive: dict[str, int] = {}
    for pid_path in sorted(state_dir.glob("*.pid")):
        try:
            pid = int(pid_path.read_text().strip())
        except (OSError, ValueError):
            pid_path.unlink(missing_ok=True)
            continue
        if _alive(pid):
            alive[pid_path.stem] = pid
        else:
            pid_path.unlink(missing_ok=True)
    return alive


def answers(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers a GET with a 2xx status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URLs we built
            return 200 <= response.status < 300
    except (OSError, urllib.error.URLError):
        return False


def start(services: Iterable[Service], state_dir: Path, env: Mapping[str, str]) -> dict[str, int]:
    """Start every service not already running; return name -> pid of all of them."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "logs").mkdir(exist_ok=True)
    already = running(state_dir)
    pids: dict[str, int] = {}
    for service in services:
        if service.name in already:
            log.info("%s already running (pid %d)", service.name, already[service.name])
            pids[service.name] = already[service.name]
            continue
        with log_file(state_dir, service.name).open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - argv built by the caller from the venv's own commands
                list(service.argv), env={**env, **service.env}, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        _pid_file(state_dir, service.name).write_text(str(proc.pid))
        pids[service.name] = proc.pid
        log.info("started %s (pid %d, log %s)", service.name, proc.pid, log_file(state_dir, service.name))
    return pids


def wait_healthy(services: Iterable[Service], state_dir: Path, timeout: float = 180.0,
                 progress: Callable[[str], None] | None = None) -> None:
    """Wait until every service is alive and its health URL answers; raise :class:`StackError` otherwise."""
    pending = {s.name: s for s in services}
    deadline = time.monotonic() + timeout
    while pending:
        alive = running(state_dir)
        for name, service in list(pending.items()):
            if name not in alive:
                tail = tail_of(log_file(state_dir, name))
                raise StackError(f"{name} exited during start-up; last lines of its log:\n{tail}")
            if service.health_url is None or answers(service.health_url):
                pending.pop(name)
                if progress:
                    progress(f"{name} is up" + (f" ({service.health_url})" if service.health_url else ""))
        if pending and time.monotonic() > deadline:
            names = ", ".join(sorted(pending))
            raise StackError(f"not healthy after {timeout:.0f} s: {names}; logs in {state_dir / 'logs'}")
        if pending:
            time.sleep(0.5)


def stop(state_dir: Path, names: Iterable[str] | None = None, timeout: float = 30.0) -> list[str]:
    """Stop services and everything they started; return the stopped names.

    SIGTERM goes to each service's whole process tree (task processes of Airflow executors start
    their own sessions, so the process group alone would miss them); what is left after
    ``timeout`` gets SIGKILL.
    """
    import psutil  # an Airflow dependency; imported here so the module stays cheap to import

    alive = running(state_dir)
    wanted = {n: p for n, p in alive.items() if names is None or n in set(names)}
    procs: list[psutil.Process] = []
    for pid in wanted.values():
        try:
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    for proc in procs:
        _quietly(proc.terminate)
    _, left = psutil.wait_procs(procs, timeout=timeout)
    for proc in left:
        log.warning("pid %d (%s) ignored SIGTERM for %.0f s; killing it", proc.pid, _name(proc), timeout)
        _quietly(proc.kill)
    psutil.wait_procs(left, timeout=5)
    for name in wanted:
        _pid_file(state_dir, name).unlink(missing_ok=True)
    return sorted(wanted)


def _quietly(action: Callable[[], object]) -> None:
    import psutil

    try:
        action()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass


def _name(proc: object) -> str:
    try:
        return " ".join(proc.cmdline()[:3])  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - only for a log line
        return "?"


@contextmanager
def up(services: Sequence[Service], state_dir: Path, env: Mapping[str, str], *, timeout: float = 180.0,
       progress: Callable[[str], None] | None = None) -> Generator[dict[str, int], None, None]:
    """Start ``services``, wait until they are up, stop them at the end; on failure print each log's tail.

    Yields the pids by name. The tests' one way to run a piece of the stack for a module.
    """
    try:
        pids = start(services, state_dir, env)
        wait_healthy(services, state_dir, timeout=timeout, progress=progress)
        yield pids
    except BaseException:
        for service in services:
            print(f"\n----- {service.name} (last lines) -----\n{tail_of(log_file(state_dir, service.name), 40)}")
        raise
    finally:
        stop(state_dir, timeout=20)


def tail_of(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
