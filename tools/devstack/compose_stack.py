"""docker-compose.yaml under podman, for `make test-compose` and by hand.

On a machine with podman but no image registry and no systemd (these CI machines), the compose file
runs unchanged beside tools/compose/podman.override.yaml, which swaps only what cannot be pulled
(Postgres, Redis, MinIO). Two things podman 4.3 does not do for podman-compose are done here:

- ``depends_on`` conditions: podman-compose skips ``service_healthy`` on podman < 4.6 and reads
  ``service_completed_successfully`` as "stopped". :meth:`ComposeStack.up` starts the services
  one by one in dependency order (``podman-compose up -d --no-deps SERVICE``) and, before each,
  waits for every condition it declares: healthy (the service's own healthcheck, run with
  ``podman healthcheck run``), exited with code 0, or started.
- healthchecks: podman runs them from systemd timers, and there is no systemd here; the checks are
  run on demand instead (the same command, the same verdict).

    python tools/devstack/compose_stack.py build          base, Postgres, Redis and project images
    python tools/devstack/compose_stack.py up [PROJECT]   the stack (writes .autoretrain/compose/PROJECT.env)
    python tools/devstack/compose_stack.py down [PROJECT] stop and remove the containers, keep the volumes
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "tools" / "compose"
STATE = ROOT / ".autoretrain" / "compose"
FILES = (ROOT / "docker-compose.yaml", COMPOSE / "podman.override.yaml")
BASE_IMAGE = "localhost/debian-base:bookworm"
PROJECT_IMAGE = "localhost/autoretrain:local"
STAND_INS = {"localhost/autoretrain-postgres:15": COMPOSE / "postgres",
             "localhost/autoretrain-redis:7": COMPOSE / "redis"}
UID = 50000  # the Dockerfile's USER

#: every secret of .env.example, generated fresh for each stack (none is a default or an example value)
SECRET_KEYS = (
    "POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "APP_DB_PASSWORD", "TASKS_DB_PASSWORD",
    "SERVING_DB_PASSWORD", "MINIO_ROOT_PASSWORD", "PIPELINE_S3_SECRET_KEY", "MLFLOW_S3_SECRET_KEY",
    "PREDICTION_S3_SECRET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_ADMIN_PASSWORD",
    "AUTORETRAIN_FEEDBACK_TOKEN", "AUTORETRAIN_ADMIN_TOKEN", "AUTORETRAIN_ROUTING_SALT", "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY", "AUTORETRAIN_INTEGRITY_KEY", "GRAFANA_ADMIN_PASSWORD", "AIRFLOW_FERNET_KEY",
)
PORT_KEYS = ("AIRFLOW_PORT", "MLFLOW_PORT", "PREDICTION_PORT", "MINIO_CONSOLE_PORT")


class ComposeError(RuntimeError):
    """A container did not reach the state a dependent needs, or a podman command failed."""


def podman_env() -> dict[str, str]:
    """podman's settings for these machines (runc, no default rlimits): tools/compose/containers.conf."""
    return {**os.environ, "CONTAINERS_CONF": str(COMPOSE / "containers.conf")}


def podman(*args: str, check: bool = True, timeout: float | None = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, env=podman_env(), timeout=timeout,
                            check=False)
    if check and result.returncode != 0:
        raise ComposeError(f"podman {' '.join(args[:3])} ... exited {result.returncode}: "
                           f"{(result.stderr or result.stdout).strip()[-1500:]}")
    return result


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def build_images(progress: Callable[[str], None] = print, *, rebuild_base: bool = False) -> dict[str, float]:
    """The local base (debootstrap, once per machine), the stand-ins and the project image; seconds each.

    podman's layer cache keeps the dependency layers between runs: after the first build, a code
    change rebuilds only the project copy.
    """
    seconds: dict[str, float] = {}
    began = time.monotonic()
    if rebuild_base or not image_exists(BASE_IMAGE):
        progress(f"building {BASE_IMAGE} with debootstrap (tools/compose/build_base.sh)")
        subprocess.run(["bash", str(COMPOSE / "build_base.sh"), BASE_IMAGE], check=True, env=podman_env())
    seconds["base_s"] = round(time.monotonic() - began, 1)
    for image, context in STAND_INS.items():
        began = time.monotonic()
        podman("build", "-q", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", image, str(context))
        seconds[image.split("/")[-1].split(":")[0] + "_s"] = round(time.monotonic() - began, 1)
    began = time.monotonic()
    progress(f"building {PROJECT_IMAGE} from ./Dockerfile on {BASE_IMAGE}")
    podman("build", "-q", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", PROJECT_IMAGE, str(ROOT), timeout=1800)
    seconds["project_image_s"] = round(time.monotonic() - began, 1)
    return seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_env(workers: int = 2) -> dict[str, str]:
    """The values of a .env for one stack: every secret random, ports free on loopback."""
    values = {key: secrets.token_urlsafe(24) for key in SECRET_KEYS}
    values["AIRFLOW_FERNET_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
    values.update({key: str(free_port()) for key in PORT_KEYS})
    values.update({"BIND_ADDRESS": "127.0.0.1", "AUTORETRAIN_IMAGE": "autoretrain:local",
                   "AIRFLOW_WORKER_REPLICAS": str(workers), "AIRFLOW_WORKER_CONCURRENCY": "2"})
    return values


def write_env(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    path.chmod(0o600)


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


class ComposeStack:
    """One podman-compose project of docker-compose.yaml (+ the override) with its own .env."""

    def __init__(self, project: str, env_file: Path) -> None:
        self.project = project
        self.env_file = env_file
        self.env = read_env(env_file)
        self._config: dict[str, Any] | None = None

    # --- podman-compose ----------------------------------------------------------------------------
    def compose(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "podman_compose", "--project-name", self.project, "--env-file",
               str(self.env_file)]
        for file in FILES:
            cmd += ["-f", str(file)]
        result = subprocess.run([*cmd, *args], capture_output=True, text=True, env=podman_env(), cwd=ROOT,
                                timeout=timeout, check=False)
        if result.returncode != 0:
            raise ComposeError(f"podman-compose {' '.join(args)} exited {result.returncode}: "
                               f"{(result.stderr or result.stdout).strip()[-2000:]}")
        return result

    def config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = yaml.safe_load(self.compose("config").stdout)
        return self._config

    def services(self) -> dict[str, dict[str, Any]]:
        """The services `up` starts: every one not behind a profile."""
        return {name: spec for name, spec in self.config()["services"].items() if not spec.get("profiles")}

    def start_order(self) -> list[str]:
        services = self.services()
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for dep in _depends_on(services[name]):
                visit(dep)
            order.append(name)

        for name in services:
            visit(name)
        return order

    # --- containers --------------------------------------------------------------------------------
    def containers(self, service: str, *, all_states: bool = True) -> list[str]:
        args = ["ps", "--format", "{{.Names}}", "--filter", f"label=io.podman.compose.project={self.project}",
                "--filter", f"label=com.docker.compose.service={service}"]
        out = podman(*(args + (["-a"] if all_states else []))).stdout
        return sorted(line for line in out.splitlines() if line.strip())

    def container(self, service: str) -> str:
        names = self.containers(service)
        if not names:
            raise ComposeError(f"no container for service {service}")
        return names[0]

    def inspect(self, name: str) -> dict[str, Any]:
        return json.loads(podman("inspect", name).stdout)[0]

    def logs(self, name: str, tail: int = 40) -> str:
        return podman("logs", "--tail", str(tail), name, check=False).stdout + \
            podman("logs", "--tail", str(tail), name, check=False).stderr

    def exec(self, service: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.container(service), *cmd, check=check)

    def psql(self, sql: str, database: str = "autoretrain") -> str:
        """A query as the superuser, over the Postgres container's socket (trust there, not on TCP)."""
        user = self.env.get("POSTGRES_USER", "autoretrain")
        return self.exec("postgres", "psql", "--no-psqlrc", "-At", "-U", user, "-d", database, "-c", sql).stdout.strip()

    # --- waiting -----------------------------------------------------------------------------------
    def wait_healthy(self, service: str, timeout: float = 300) -> None:
        """Run the service's healthcheck until it passes on every container of the service."""
        deadline = time.monotonic() + timeout
        for name in self.containers(service):
            while True:
                state = self.inspect(name)["State"]
                if not state.get("Running"):
                    if state.get("Status") == "exited" and _restart_policy(self.inspect(name)) in ("no", ""):
                        raise ComposeError(f"{name} exited ({state.get('ExitCode')}):\n{self.logs(name)}")
                elif podman("healthcheck", "run", name, check=False, timeout=120).returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise ComposeError(f"{name} not healthy after {timeout:.0f} s:\n{self.logs(name)}")
                time.sleep(2)

    def wait_completed(self, service: str, timeout: float = 600) -> None:
        for name in self.containers(service):
            result = podman("wait", name, timeout=timeout)
            code = int(result.stdout.strip().splitlines()[-1])
            if code != 0:
                raise ComposeError(f"{name} exited {code} (a dependent needs 0):\n{self.logs(name, 80)}")

    def wait_running(self, service: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for name in self.containers(service):
            while not self.inspect(name)["State"].get("Running"):
                if time.monotonic() > deadline:
                    raise ComposeError(f"{name} not running after {timeout:.0f} s:\n{self.logs(name)}")
                time.sleep(1)

    def wait(self, service: str, condition: str) -> None:
        {"service_healthy": self.wait_healthy, "service_completed_successfully": self.wait_completed,
         "service_started": self.wait_running}[condition](service)

    # --- the stack ---------------------------------------------------------------------------------
    def up(self, progress: Callable[[str], None] = print) -> float:
        """Every service, in dependency order, each once its dependencies meet their conditions."""
        began = time.monotonic()
        services = self.services()
        met: set[tuple[str, str]] = set()
        for name in self.start_order():
            for dep, condition in _depends_on(services[name]).items():
                if (dep, condition) not in met:
                    progress(f"  {name}: waiting for {dep} ({condition})")
                    self.wait(dep, condition)
                    met.add((dep, condition))
            progress(f"  starting {name}")
            self.compose("up", "-d", "--no-deps", name)
        for name, spec in services.items():  # what no one waits for is up too
            if spec.get("healthcheck") and (name, "service_healthy") not in met:
                self.wait_healthy(name)
        return round(time.monotonic() - began, 1)

    def down(self, *, volumes: bool = False) -> None:
        self.compose("down", *(["--volumes"] if volumes else []), timeout=600)

    def volumes(self) -> list[str]:
        out = podman("volume", "ls", "--format", "{{.Name}}", "--filter",
                     f"label=io.podman.compose.project={self.project}").stdout
        return sorted(line for line in out.splitlines() if line.strip())

    def destroy(self) -> None:
        """Containers, volumes and the network of this project: nothing of it is left."""
        try:
            self.down(volumes=True)
        finally:
            for volume in self.volumes():
                podman("volume", "rm", "-f", volume, check=False)
            podman("network", "rm", "-f", f"{self.project}_default", check=False)

    # --- addresses -----------------------------------------------------------------------------------
    def url(self, port_key: str) -> str:
        return f"http://127.0.0.1:{self.env[port_key]}"


def _depends_on(spec: dict[str, Any]) -> dict[str, str]:
    deps = spec.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (value or {}).get("condition", "service_started") for name, value in deps.items()}


def _restart_policy(inspected: dict[str, Any]) -> str:
    return str((inspected.get("HostConfig", {}).get("RestartPolicy") or {}).get("Name", ""))


@contextmanager
def env_file_in_build_context(values: dict[str, str]) -> Generator[bool, None, None]:
    """A user's `.env` beside the Dockerfile while the image builds (yields False if one exists already).

    The image must not contain it (.dockerignore); the compose test then looks for every value.
    """
    path = ROOT / ".env"
    if path.exists():
        yield False
        return
    write_env(path, values)
    try:
        yield True
    finally:
        path.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "up"
    project = argv[1] if len(argv) > 1 else "autoretrain-local"
    env_file = STATE / f"{project}.env"
    if command == "build":
        print(json.dumps(build_images()))
    elif command == "up":
        if not env_file.exists():
            write_env(env_file, fresh_env())
        stack = ComposeStack(project, env_file)
        seconds = stack.up()
        print(f"up in {seconds} s: Airflow {stack.url('AIRFLOW_PORT')} (admin, password in {env_file}), "
              f"MLflow {stack.url('MLFLOW_PORT')}, prediction {stack.url('PREDICTION_PORT')}")
    elif command == "down":
        ComposeStack(project, env_file).down()
    elif command == "destroy":
        ComposeStack(project, env_file).destroy()
        env_file.unlink(missing_ok=True)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    if shutil.which("podman") is None:
        sys.exit("podman is not installed: apt-get install -y podman runc podman-compose (see docs/deploy.md)")
    sys.exit(main(sys.argv[1:]))
