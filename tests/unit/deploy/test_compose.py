"""The compose stack (docker-compose.yaml, .env.example, deploy/) agrees with the schema and the real programs.

No Docker is needed: the file is validated against the Compose Specification schema (vendored, see
data/README.md) after the same interpolation Compose does with the values of .env.example; every
command a service of the project image runs is parsed by the real parser of that program (airflow,
autoretrain, ``mlflow server``); every AIRFLOW__* and AUTORETRAIN_* variable names a real option; the
Grafana dashboard queries metrics the prediction service really exposes.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA_FILE = Path(__file__).parent / "fixtures" / "compose-spec.json"
DASHBOARD_FILE = ROOT / "deploy" / "grafana" / "dashboards" / "autoretrain.json"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"

# Compose interpolation: $$ is a literal $; ${VAR}, $VAR, ${VAR:-default}, ${VAR-default},
# ${VAR:?error}, ${VAR?error}, ${VAR:+alternative}, ${VAR+alternative}
VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
                      r"|(?P<named>[A-Za-z_]\w*))")
AIRFLOW_OPTION = re.compile(r"^AIRFLOW__(?P<section>[A-Z0-9_]+?)__(?P<key>[A-Z0-9_]+)$")
PROMQL_METRIC = re.compile(r"\bautoretrain_[a-z0-9_]+\b")
PROJECT_IMAGE = "${AUTORETRAIN_IMAGE:-autoretrain:local}"
# what the airflow services must share, exactly (values after interpolation with .env.example)
AIRFLOW_COMMON = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://airflow:change-me@postgres:5432/airflow",
    "AIRFLOW__CELERY__BROKER_URL": "redis://redis:6379/0",
    "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql://airflow:change-me@postgres:5432/airflow",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://airflow-apiserver:8080/execution/",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW_CONFIG": "/opt/autoretrain/airflow.cfg",
    "AUTORETRAIN_HOME": "/opt/autoretrain",
    "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    "AUTORETRAIN_DATABASE_URL": "postgresql+psycopg2://autoretrain_tasks:change-me@postgres:5432/autoretrain",
    "AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
    "AUTORETRAIN_ARTIFACT_STORE_URI": "s3://autoretrain/artifacts",
    "MLFLOW_S3_ENDPOINT_URL": "http://minio:9000",
    "AWS_ENDPOINT_URL": "http://minio:9000",
}
# required in x-airflow-common, from .env (no default: compose refuses to start without them)
AIRFLOW_COMMON_FROM_ENV = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY", "AUTORETRAIN_ROUTING_SALT",
                           "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
                           "AIRFLOW__CORE__PARALLELISM")
SHELLS = ("bash", "sh", "/bin/bash", "/bin/sh")
# programs the project image's services may run, each checked below
CHECKED_PROGRAMS = {"airflow", "autoretrain", "mlflow", "celery", "python", "set"}


# ------------------------------------------------------------------------------------ helpers
def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a dotenv file (comments and blank lines skipped)."""
    values = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_]\w*", key), f"{path.name}:{number}: not KEY=VALUE: {line!r}"
        values[key] = value.strip().strip("'\"")
    return values


def strings(node: Any) -> Iterator[str]:
    """Every string value in a parsed YAML document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """``node`` with Compose's variable interpolation applied; a missing required variable raises KeyError."""
    if isinstance(node, Mapping):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg, value = match["op"], match["arg"] or "", env.get(name)
        present = value is not None and (value != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return value if present else arg
        if op in (":?", "?"):
            if not present:
                raise KeyError(f"required variable {name} is missing: {arg}")
            return value
        if op in (":+", "+"):
            return arg if present else ""
        return value or ""

    return VARIABLE.sub(substitute, node)


def shell_commands(script: str) -> Iterator[list[str]]:
    """The simple commands of a shell script (lines, ``&&``, ``||``, ``;``, ``|``), without ``exec``/assignments."""
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        argv: list[str] = []
        for token in [*lexer, ";"]:
            if token in ("&&", "||", ";", "|", "&", "(", ")"):
                while argv and (argv[0] == "exec" or re.fullmatch(r"[A-Za-z_]\w*=.*", argv[0])):
                    argv.pop(0)
                if argv:
                    yield argv
                argv = []
            else:
                argv.append(token)


def service_commands(service: Mapping[str, Any]) -> Iterator[list[str]]:
    """Every command line a service runs: its entrypoint + command, and its healthcheck."""
    entrypoint, command = service.get("entrypoint"), service.get("command")
    runs = [_as_argv(entrypoint) + _as_argv(command)] if entrypoint is not None or command is not None else []
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, str):
        runs.append(["CMD-SHELL", test])
    elif test:
        runs.append([str(x) for x in test])
    for argv in runs:
        if argv[:1] == ["CMD"]:
            argv = argv[1:]
        if argv[:1] == ["CMD-SHELL"]:
            yield from shell_commands(" ".join(argv[1:]))
        elif len(argv) >= 3 and argv[0] in SHELLS and argv[1] == "-c":
            yield from shell_commands(argv[2])
        elif argv and argv != ["NONE"]:
            yield argv


def _as_argv(value: str | list[Any] | None) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(x) for x in value]


def bind_mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to the compose file) of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        if source.startswith((".", "/")):
            mounts[target] = source
    return mounts


def host_path(service: Mapping[str, Any], container_path: str) -> Path | None:
    """Where in the checkout a container path of a service comes from (None: not bind-mounted)."""
    path = PurePosixPath(container_path)
    for target, source in sorted(bind_mounts(service).items(), key=lambda item: -len(item[0])):
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return (ROOT / source / path.relative_to(target)).resolve()
    return None


def airflow_option_errors(env: Mapping[str, str], description: Mapping[str, Any]) -> list[str]:
    """Problems of the AIRFLOW__SECTION__KEY variables in ``env``: unknown option, or a value of the wrong type."""
    errors = []
    for name, value in env.items():
        match = AIRFLOW_OPTION.match(name)
        if not match:
            continue
        section, key = match["section"].lower(), match["key"].lower()
        option = description.get(section, {}).get("options", {}).get(key)
        if option is None:
            errors.append(f"{name}: Airflow has no option [{section}] {key}")
            continue
        errors.extend(f"{name}={value!r}: {problem}" for problem in _type_problems(option.get("type"), str(value)))
    return errors


def _type_problems(kind: str | None, value: str) -> list[str]:
    if kind == "boolean" and value.strip().lower() not in ("t", "true", "1", "f", "false", "0"):
        return ["not a boolean"]
    if kind == "integer" and not re.fullmatch(r"-?\d+", value.strip()):
        return ["not an integer"]
    if kind == "float":
        try:
            float(value)
        except ValueError:
            return ["not a number"]
    return []


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def stack(raw: dict[str, Any], env_example: dict[str, str]) -> dict[str, Any]:
    """The compose file as Compose sees it with ``cp .env.example .env``."""
    return interpolate(raw, env_example)


@pytest.fixture(scope="module")
def project_services(raw: dict[str, Any], stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the project image (Airflow, MLflow, the prediction service)."""
    names = [name for name, service in raw["services"].items() if service.get("image") == PROJECT_IMAGE]
    return {name: stack["services"][name] for name in names}


MLFLOW_PROBE = """
import json, sys
import click
from mlflow.cli import server
errors = {}
for argv in json.loads(sys.argv[1]):
    try:
        server.make_context("mlflow server", list(argv))
    except click.ClickException as err:
        errors[" ".join(argv)] = err.format_message()
json.dump({"options": sorted(o for p in server.params for o in p.opts), "errors": errors}, sys.stdout)
"""


@dataclasses.dataclass
class MlflowProbe:
    """``mlflow server`` argument lists being parsed by mlflow's click command in ``proc``."""

    argvs: list[list[str]]
    proc: subprocess.Popen[str]


@pytest.fixture(scope="module", autouse=True)
def mlflow_probe(project_services: dict[str, dict[str, Any]]) -> Iterator[MlflowProbe]:
    """Parse every ``mlflow server`` command line with mlflow's own click command, in a child process.

    Importing ``mlflow.cli`` takes ~6 s of CPU; started before the first test, it overlaps the Airflow checks.
    """
    argvs = [argv[2:] for service in project_services.values() for argv in service_commands(service)
             if argv[:2] == ["mlflow", "server"]]
    probe = [*argvs, ["--no-such-option"]]  # a control: the probe must report this one
    proc = subprocess.Popen([sys.executable, "-c", MLFLOW_PROBE, json.dumps(probe)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield MlflowProbe(argvs, proc)
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


@pytest.fixture(scope="module")
def airflow_config() -> dict[str, Any]:
    """Airflow's description of every option, the providers' (celery...) included."""
    from airflow.configuration import conf

    return conf.configuration_description


# ------------------------------------------------------------------------------------ (a) schema
def test_compose_file_matches_the_compose_spec_schema(raw: dict[str, Any], stack: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    for label, document in (("as written", raw), ("interpolated with .env.example", stack)):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors, f"docker-compose.yaml ({label}) breaks the compose spec:\n" + "\n".join(errors)
    typo = json.loads(json.dumps(stack))
    typo["services"]["postgres"]["healthcheck"]["intervall"] = "10s"
    assert not validator.is_valid(typo), "the schema must reject an unknown healthcheck key"


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("${A:-x}|${A-x}", {}, "x|x"),
    ("${A:-x}|${A-x}", {"A": ""}, "x|"),
    ("${A:+y}|${A+y}|$A|${A}", {"A": "v"}, "y|y|v|v"),
    ("$${HOSTNAME} $$HOME", {"HOSTNAME": "h"}, "${HOSTNAME} $HOME"),
    ("${A:?set A}", {"A": "v"}, "v"),
])
def test_interpolation_follows_compose(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env) == expected


@pytest.mark.parametrize("text", ["${A:?set A}", "${A?set A}"])
def test_interpolation_refuses_a_missing_required_variable(text: str) -> None:
    with pytest.raises(KeyError, match="set A"):
        interpolate(text, {})


def test_airflow_services_share_one_anchor_with_the_expected_environment(raw: dict[str, Any],
                                                                          stack: dict[str, Any]) -> None:
    common = raw["x-airflow-common"]
    assert isinstance(common["environment"], dict), "x-airflow-common.environment must be a mapping"
    env = stack["x-airflow-common"]["environment"]
    assert {k: env.get(k) for k in AIRFLOW_COMMON} == AIRFLOW_COMMON
    for name in AIRFLOW_COMMON_FROM_ENV:
        assert "${" in str(common["environment"][name]), f"{name} must come from .env"
    for name in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY"):
        assert ":?" in common["environment"][name], f"{name} must be required (${{VAR:?message}})"
    airflow_services = [name for name, service in stack["services"].items()
                        if any(argv[0] == "airflow" for argv in service_commands(service))]
    assert sorted(airflow_services) == ["airflow-apiserver", "airflow-dag-processor", "airflow-init",
                                        "airflow-scheduler", "airflow-triggerer", "airflow-worker"]
    for name in airflow_services:
        service_env = stack["services"][name]["environment"]
        assert {k: service_env.get(k) for k in env} == env, f"{name} does not use x-airflow-common's environment"


def test_urls_name_compose_services_and_their_ports(stack: dict[str, Any]) -> None:
    services = stack["services"]
    ports = {"postgres": 5432, "redis": 6379, "minio": 9000, "mlflow": 5000, "airflow-apiserver": 8080,
             "prediction": 8000, "prometheus": 9090}
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if "://" not in str(value) or str(value).startswith("s3://"):
                continue
            url = urlsplit(str(value))
            assert url.hostname in services, f"{name}: {key} points at {url.hostname}, not a compose service"
            assert url.port == ports[url.hostname], f"{name}: {key} uses port {url.port} of {url.hostname}"


def test_depends_on_conditions_can_be_met(raw: dict[str, Any]) -> None:
    services = raw["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for target, spec in (depends.items() if isinstance(depends, dict) else ((t, {}) for t in depends)):
            assert target in services, f"{name} depends on unknown service {target}"
            condition = (spec or {}).get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy; it has no check"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is a one-shot; restart must be 'no'"


def test_the_project_image_is_built_before_any_service_needs_it(raw: dict[str, Any]) -> None:
    services = raw["services"]
    users = [name for name, service in services.items() if service.get("image") == PROJECT_IMAGE]
    builders = [name for name in users if "build" in services[name]]
    assert len(builders) == 1, f"exactly one service should build {PROJECT_IMAGE}, found {builders}"
    assert services[builders[0]]["build"]["dockerfile"] == "Dockerfile"

    def ancestors(name: str, seen: set[str]) -> set[str]:
        depends = services[name].get("depends_on") or {}
        for target in depends:
            if target not in seen:
                seen.add(target)
                ancestors(target, seen)
        return seen

    for name in set(users) - set(builders):
        assert builders[0] in ancestors(name, set()), f"`docker compose up {name}` would not build the image"


def test_prediction_service_shares_the_stores_of_the_airflow_tasks(stack: dict[str, Any]) -> None:
    airflow_env = stack["x-airflow-common"]["environment"]
    prediction_env = stack["services"]["prediction"]["environment"]
    shared = ("AUTORETRAIN_ARTIFACT_STORE_URI", "MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL",
              "AUTORETRAIN_ROUTING_SALT")  # the canary check recomputes the service's routing with the salt
    assert {k: prediction_env[k] for k in shared} == {k: airflow_env[k] for k in shared}
    # the same database with its own role and its own S3 user (issue 12)
    served = urlsplit(prediction_env["AUTORETRAIN_DATABASE_URL"])
    tasks = urlsplit(airflow_env["AUTORETRAIN_DATABASE_URL"])
    assert (served.hostname, served.path) == (tasks.hostname, tasks.path) and served.username != tasks.username
    assert prediction_env["AWS_ACCESS_KEY_ID"] != airflow_env["AWS_ACCESS_KEY_ID"]
    assert prediction_env["AUTORETRAIN_SERVING_HOST"] == "0.0.0.0"


# ------------------------------------------------------------------------------------ (b) variables
def test_required_variables_are_in_env_example(raw: dict[str, Any], env_example: dict[str, str]) -> None:
    required = {m["braced"] or m["named"] for text in strings(raw) for m in VARIABLE.finditer(text)
                if not m["escaped"] and (m["op"] or "").lstrip(":") in ("", "?")}
    assert required, "no required variable found: the pattern is broken"
    assert sorted(required - set(env_example)) == []


def test_every_env_example_variable_is_used(raw: dict[str, Any], env_example: dict[str, str]) -> None:
    used = {m["braced"] or m["named"] for text in strings(raw) for m in VARIABLE.finditer(text) if not m["escaped"]}
    assert sorted(set(env_example) - used) == []


def test_compose_refuses_to_start_without_the_secrets(raw: dict[str, Any], env_example: dict[str, str]) -> None:
    for secret in ("POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "MINIO_ROOT_PASSWORD",
                   "AUTORETRAIN_FEEDBACK_TOKEN", "AUTORETRAIN_ADMIN_TOKEN", "AUTORETRAIN_ROUTING_SALT",
                   "APP_DB_PASSWORD", "TASKS_DB_PASSWORD", "SERVING_DB_PASSWORD",
                   "PREDICTION_S3_SECRET_KEY"):
        with pytest.raises(KeyError, match=secret):
            interpolate(raw, {k: v for k, v in env_example.items() if k != secret})


# ------------------------------------------------------------------------------------ (c) commands
def test_every_program_the_project_image_runs_is_checked(project_services: dict[str, dict[str, Any]]) -> None:
    programs = {argv[0] for service in project_services.values() for argv in service_commands(service)}
    assert programs <= CHECKED_PROGRAMS, f"unchecked programs: {sorted(programs - CHECKED_PROGRAMS)}"
    assert {"airflow", "autoretrain", "mlflow"} <= programs


def test_airflow_commands_parse(project_services: dict[str, dict[str, Any]]) -> None:
    from airflow.cli import cli_parser

    parser = cli_parser.get_parser()
    argvs = [argv for service in project_services.values() for argv in service_commands(service)
             if argv[0] == "airflow"]
    found = [shlex.join(argv) + " " for argv in argvs]
    for expected in ("api-server", "scheduler", "dag-processor", "triggerer", "celery worker", "db migrate",
                     "jobs check"):
        assert any(line.startswith(f"airflow {expected} ") for line in found), f"no `airflow {expected}`"
    for argv in argvs:
        try:
            parser.parse_args(argv[1:])
        except SystemExit as err:
            pytest.fail(f"`{shlex.join(argv)}` is not a valid airflow command (exit {err.code})")
    with pytest.raises(SystemExit):
        parser.parse_args(["api-server", "--no-such-option"])


def test_autoretrain_commands_parse(project_services: dict[str, dict[str, Any]]) -> None:
    from autoretrain.cli.main import build_parser

    argvs = [argv for service in project_services.values() for argv in service_commands(service)
             if argv[0] == "autoretrain"]
    assert sorted(argvs) == [["autoretrain", "db", "--database-url", "$DB_OWNER_URL", "grant", "autoretrain_serving"],
                             ["autoretrain", "db", "--database-url", "$DB_OWNER_URL", "grant", "autoretrain_tasks"],
                             ["autoretrain", "db", "--database-url", "$DB_OWNER_URL", "upgrade"],
                             ["autoretrain", "serve"]]
    for argv in argvs:
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as err:
            pytest.fail(f"`{shlex.join(argv)}` is not a valid autoretrain command (exit {err.code})")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--no-such-option"])


def test_airflow_init_migrates_autoretrains_database_before_anything_uses_it(raw: dict[str, Any],
                                                                           stack: dict[str, Any]) -> None:
    init = stack["services"]["airflow-init"]
    commands = list(service_commands(init))
    assert ["airflow", "db", "migrate"] in commands
    # as the tables' owner, then the tasks' and the service's roles get their grants (deploy/postgres/roles.sql)
    upgrade = commands.index(["autoretrain", "db", "--database-url", "$DB_OWNER_URL", "upgrade"])
    grants = [["autoretrain", "db", "--database-url", "$DB_OWNER_URL", "grant", role]
              for role in ("autoretrain_tasks", "autoretrain_serving")]
    assert commands[upgrade + 1:upgrade + 3] == grants
    assert init["environment"]["DB_OWNER_URL"] == (
        "postgresql+psycopg2://autoretrain_app:change-me@postgres:5432/autoretrain")
    assert init["restart"] == "no" and init["command"][:2] == ["bash", "-c"]
    assert init["command"][2].lstrip().startswith("set -euo pipefail"), "a failed upgrade must fail airflow-init"
    url = stack["x-airflow-common"]["environment"]["AUTORETRAIN_DATABASE_URL"]
    assert init["environment"]["AUTORETRAIN_DATABASE_URL"] == url  # the database the tasks and the service use
    served = urlsplit(stack["services"]["prediction"]["environment"]["AUTORETRAIN_DATABASE_URL"])
    assert (served.hostname, served.path) == (urlsplit(url).hostname, urlsplit(url).path)  # its own role (issue 12)
    users = [name for name, service in raw["services"].items() if service.get("image") == PROJECT_IMAGE
             and "AUTORETRAIN_DATABASE_URL" in (stack["services"][name].get("environment") or {})
             and name != "airflow-init"]
    assert "prediction" in users and "airflow-worker" in users
    for name in users:
        condition = (raw["services"][name].get("depends_on") or {}).get("airflow-init", {}).get("condition")
        assert condition == "service_completed_successfully", f"{name} may start before the upgrade ran"


def test_python_one_liners_compile(project_services: dict[str, dict[str, Any]]) -> None:
    snippets = [argv[2] for service in project_services.values() for argv in service_commands(service)
                if argv[0] == "python"]
    assert len(snippets) >= 4  # the HTTP healthchecks
    for code in snippets:
        compile(code, "<docker-compose.yaml>", "exec")


def test_celery_healthcheck_names_the_real_celery_app(project_services: dict[str, dict[str, Any]]) -> None:
    apps = {argv[argv.index("--app") + 1] for service in project_services.values()
            for argv in service_commands(service) if argv[0] == "celery"}
    assert apps == {"airflow.providers.celery.executors.celery_executor.app"}
    module, _, attribute = apps.pop().rpartition(".")
    assert getattr(importlib.import_module(module), attribute) is not None


# ------------------------------------------------------------------------------------ (d) settings
def test_airflow_variables_name_real_options(stack: dict[str, Any], airflow_config: dict[str, Any]) -> None:
    envs = [stack["x-airflow-common"]["environment"]]
    envs += [service.get("environment") or {} for service in stack["services"].values()]
    names = {name for env in envs for name in env if AIRFLOW_OPTION.match(name)}
    assert "AIRFLOW__CELERY__BROKER_URL" in names  # provider sections are looked up too
    errors = [error for env in envs for error in airflow_option_errors(env, airflow_config)]
    assert errors == []
    bad = {"AIRFLOW__CORE__EXECUTER": "CeleryExecutor", "AIRFLOW__CORE__PARALLELISM": "many",
           "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "nope"}
    assert len(airflow_option_errors(bad, airflow_config)) == 3


def test_autoretrain_variables_name_real_settings(stack: dict[str, Any]) -> None:
    from autoretrain import config

    known = {f"AUTORETRAIN_{f.name.upper()}" for f in dataclasses.fields(config.Settings)}
    known |= {config.HOME_ENV, config.CONFIG_ENV}
    for name, service in stack["services"].items():
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        unknown = sorted(k for k in env if k.startswith(config.ENV_PREFIX) and k not in known)
        assert unknown == [], f"{name}: not AutoRetrain settings: {unknown}"
        if any(k.startswith(config.ENV_PREFIX) for k in env):
            config.load_settings(environ=env)  # the values convert to the fields' types


def test_project_paths_exist_in_the_image(stack: dict[str, Any]) -> None:
    """/opt/autoretrain is the build context (minus .dockerignore); /opt/airflow's dirs are made by the Dockerfile."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")]
    assert re.search(r"^COPY \. /opt/autoretrain$", dockerfile, re.MULTILINE)
    paths = {v for v in strings(stack) if v.startswith(("/opt/autoretrain/", "/opt/airflow/"))}
    assert "/opt/autoretrain/airflow.cfg" in paths
    for path in sorted(paths):
        relative = PurePosixPath(path).relative_to("/opt/autoretrain" if path.startswith("/opt/autoretrain/")
                                                   else "/opt/airflow")
        if path.startswith("/opt/autoretrain/"):
            assert (ROOT / relative).exists(), f"{path}: {relative} is not in the checkout"
            assert not any(fnmatch.fnmatch(str(relative), p) or fnmatch.fnmatch(relative.parts[0], p)
                           for p in ignored), f"{path}: excluded by .dockerignore"
        else:
            assert f"/opt/airflow/{relative.parts[0]}" in dockerfile, f"{path}: the Dockerfile does not create it"


# ------------------------------------------------------------------------------------ (e) files
def test_bind_mounted_files_exist(stack: dict[str, Any]) -> None:
    mounts = [(name, source) for name, service in stack["services"].items()
              for source in bind_mounts(service).values()]
    assert {name for name, _ in mounts} >= {"postgres", "prometheus", "grafana"}
    for name, source in mounts:
        assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    referenced = {m.group(0) for text in strings(stack) for m in re.finditer(r"\./deploy/[\w./-]+", text)}
    assert all((ROOT / path).exists() for path in referenced)


def test_config_files_point_at_mounted_paths(stack: dict[str, Any]) -> None:
    prometheus, grafana = stack["services"]["prometheus"], stack["services"]["grafana"]
    config_file = next(a.split("=", 1)[1] for a in prometheus["command"] if a.startswith("--config.file="))
    assert host_path(prometheus, config_file) == PROMETHEUS_FILE
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path(grafana, home) == DASHBOARD_FILE
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    assert provisioning == GRAFANA_PROVISIONING
    for provider_file in sorted((provisioning / "dashboards").glob("*.yml")):
        for provider in yaml.safe_load(provider_file.read_text(encoding="utf-8"))["providers"]:
            folder = host_path(grafana, provider["options"]["path"])
            assert folder is not None and DASHBOARD_FILE in folder.glob("*.json"), provider_file.name


def test_prometheus_scrapes_every_prediction_process(stack: dict[str, Any]) -> None:
    scrape = yaml.safe_load(PROMETHEUS_FILE.read_text(encoding="utf-8"))["scrape_configs"]
    job = next(j for j in scrape if j["job_name"] == "autoretrain-prediction")
    (sd,) = job["dns_sd_configs"]
    (name,) = sd["names"]
    assert stack["services"][name]["command"] == ["autoretrain", "serve"]
    assert sd["port"] == int(stack["services"][name]["environment"]["AUTORETRAIN_SERVING_PORT"])
    assert job["metrics_path"] == "/metrics"


def test_grafana_datasource_is_the_stack_prometheus(stack: dict[str, Any]) -> None:
    datasources = GRAFANA_PROVISIONING / "datasources" / "prometheus.yml"
    (source,) = yaml.safe_load(datasources.read_text(encoding="utf-8"))["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname in stack["services"] and url.port == 9090
    dashboard = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {source["uid"]}


# ------------------------------------------------------------------------------------ (f) metrics
def exposed_series() -> dict[str, set[str]]:
    """Sample name -> label names, for every series the prediction service's /metrics can show."""
    from prometheus_client.metrics import MetricWrapperBase

    from autoretrain.serving.log_writer import WriterStats
    from autoretrain.serving.telemetry import ServingMetrics

    metrics = ServingMetrics(lambda: WriterStats(accepted=0, written=0, dropped=0, lost=0, depth=0, failed_batches=0))
    # label names are only on the metric objects (a family without children has no samples yet)
    labels_of = {m._name: set(m._labelnames) for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"),
                "summary": ("", "_sum", "_count")}
    series: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        labels = labels_of.get(family.name, set())
        for suffix in suffixes[family.type]:
            series[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return series


def test_dashboard_queries_metrics_the_service_exposes() -> None:
    exposed = exposed_series()
    assert "autoretrain_predictions_total" in exposed and "autoretrain_request_duration_seconds_bucket" in exposed
    dashboard = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    for expr in exprs:
        used = PROMQL_METRIC.findall(expr)
        assert used, f"query uses no AutoRetrain metric: {expr}"
        assert sorted(set(used) - set(exposed)) == [], f"not exposed by the service: {expr}"
        labels = set(re.findall(r"(\w+)\s*=~?", " ".join(re.findall(r"\{([^}]*)\}", expr))))
        labels |= {label.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for label in group.split(",")}
        allowed = set().union(*(exposed[m] for m in used)) | {"instance", "job"}
        assert labels <= allowed, f"labels {sorted(labels - allowed)} are not on {sorted(set(used))}: {expr}"


# ------------------------------------------------------------------------------------ helm
def test_helm_values_reuse_the_compose_environment(stack: dict[str, Any], airflow_config: dict[str, Any]) -> None:
    values = yaml.safe_load(HELM_VALUES.read_text(encoding="utf-8"))
    assert values["executor"] == "CeleryExecutor"
    assert values["images"]["airflow"]["repository"] and values["images"]["airflow"]["tag"]
    assert values["postgresql"]["enabled"] is False and values["redis"]["enabled"] is False
    assert all(values["data"][key] for key in ("metadataSecretName", "resultBackendSecretName", "brokerUrlSecretName"))
    assert all(values[key] for key in ("fernetKeySecretName", "jwtSecretName", "apiSecretKeySecretName"))
    for component in ("apiServer", "scheduler", "dagProcessor", "triggerer", "workers"):
        assert values[component]["replicas"] >= 1
    compose_env = stack["x-airflow-common"]["environment"]
    names = [item["name"] for item in values["env"]] + [item["envName"] for item in values["secret"]]
    assert sorted(set(names) - set(compose_env)) == []
    assert {"AUTORETRAIN_DATABASE_URL", "MLFLOW_TRACKING_URI", "AUTORETRAIN_ARTIFACT_STORE_URI"} <= set(names)
    options = {f"AIRFLOW__{section.upper()}__{key.upper()}": str(value)
               for section, keys in values["config"].items() for key, value in keys.items()}
    assert airflow_option_errors(options, airflow_config) == []


def test_helm_migrate_job_upgrades_autoretrains_database() -> None:
    from airflow.cli import cli_parser

    from autoretrain.cli.main import build_parser

    job = yaml.safe_load(HELM_VALUES.read_text(encoding="utf-8"))["migrateDatabaseJob"]
    assert job["enabled"] is True and job.get("applyCustomEnv", True) is True  # the job gets `env` and `secret`
    assert job["args"][:2] == ["bash", "-c"] and job["args"][2].startswith("set -euo pipefail")
    commands = list(shell_commands(job["args"][2]))
    assert commands == [["set", "-euo", "pipefail"], ["autoretrain", "db", "upgrade"], ["airflow", "db", "migrate"]]
    build_parser().parse_args(commands[1][1:])
    cli_parser.get_parser().parse_args(commands[2][1:])


# ------------------------------------------------------------------------------------ (c) mlflow, last
# last in the file: the probe started before the first test has had the other tests' time to import mlflow
def test_mlflow_server_options_exist(mlflow_probe: MlflowProbe) -> None:
    out, err = mlflow_probe.proc.communicate(timeout=300)
    assert mlflow_probe.proc.returncode == 0, err[-2000:]
    result = json.loads(out)
    assert mlflow_probe.argvs, "no `mlflow server` command found"
    assert list(result["errors"]) == ["--no-such-option"], result["errors"]
    for argv in mlflow_probe.argvs:
        given = {arg.split("=")[0] for arg in argv if arg.startswith("--")}
        assert given <= set(result["options"])
        assert {"--backend-store-uri", "--artifacts-destination", "--host", "--allowed-hosts"} <= given


# ------------------------------------------------------------------------------------ access (issue 12)
ROOT_SECRETS = ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD")
ROLE_OF = {"prediction": "autoretrain_serving", "mlflow": "mlflow"}


def _secrets_used(raw_service: Mapping[str, Any]) -> set[str]:
    return {m["braced"] or m["named"] for text in strings(raw_service) for m in VARIABLE.finditer(text)
            if not m["escaped"]}


def test_no_service_but_the_init_ones_gets_the_superuser_or_root_keys(raw: dict[str, Any],
                                                                      stack: dict[str, Any]) -> None:
    holders = {name for name, service in raw["services"].items() if _secrets_used(service) & set(ROOT_SECRETS)}
    if _secrets_used(raw["x-airflow-common"]) & set(ROOT_SECRETS):
        holders |= {name for name in raw["services"] if name.startswith("airflow-")}
    # postgres and minio are the servers themselves; the two one-shot init services create the roles and users
    assert holders == {"postgres", "postgres-init", "minio", "minio-init"}
    superuser = stack["services"]["postgres"]["environment"]["POSTGRES_USER"]
    root_user = stack["services"]["minio"]["environment"]["MINIO_ROOT_USER"]
    for name, service in stack["services"].items():
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        users = {urlsplit(v).username for v in env.values() if v.startswith(("postgresql", "db+postgresql"))}
        users |= {urlsplit(a).username for a in map(str, service.get("command") or []) if a.startswith("postgresql")}
        assert superuser not in users, f"{name} logs in to Postgres as the superuser"
        if name not in ("minio", "minio-init"):
            assert env.get("AWS_ACCESS_KEY_ID") != root_user, f"{name} uses the MinIO root keys"


def test_each_service_has_its_own_postgres_role_and_s3_user(stack: dict[str, Any]) -> None:
    services = stack["services"]
    mlflow_store = next(a for a in services["mlflow"]["command"] if a.startswith("postgresql"))
    assert urlsplit(mlflow_store).username == "mlflow"
    prediction = services["prediction"]["environment"]
    assert urlsplit(prediction["AUTORETRAIN_DATABASE_URL"]).username == "autoretrain_serving"
    assert prediction["AWS_ACCESS_KEY_ID"] == "prediction"
    assert services["mlflow"]["environment"]["AWS_ACCESS_KEY_ID"] == "mlflow"
    roles = (ROOT / "deploy" / "postgres" / "roles.sql").read_text(encoding="utf-8")
    for role in ("airflow", "mlflow", "autoretrain_app", "autoretrain_serving"):
        assert f"ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" in roles
    grants = [line for line in roles.splitlines() if "autoretrain_serving" in line and "GRANT" in line]
    assert grants and not any(word in line for line in grants for word in ("TRUNCATE", "TRIGGER", "ALL PRIVILEGES",
                                                                           "CREATE"))
    mounted = host_path(services["postgres-init"], "/deploy/roles.sql")
    assert mounted == ROOT / "deploy" / "postgres" / "roles.sql"
    script = " ".join(services["minio-init"]["command"])
    for who in ("pipeline", "mlflow", "prediction"):
        assert f"mc admin user add local {who} " in script
        policy = json.loads((ROOT / "deploy" / "minio" / f"{who}-policy.json").read_text(encoding="utf-8"))
        actions = {a for statement in policy["Statement"] for a in statement["Action"]}
        if who == "prediction":  # read-only on the bucket
            assert actions == {"s3:GetBucketLocation", "s3:ListBucket", "s3:GetObject"}
        else:
            assert "s3:PutObject" in actions and not any(a.startswith("s3:*") or a == "*" for a in actions)
    assert host_path(services["minio-init"], "/deploy/prediction-policy.json") == (
        ROOT / "deploy" / "minio" / "prediction-policy.json")


def test_airflow_uses_the_fab_auth_manager_with_an_admin_from_env(stack: dict[str, Any],
                                                                  airflow_config: dict[str, Any]) -> None:
    from airflow.cli import cli_parser

    env = stack["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
    assert not any("SIMPLE_AUTH_MANAGER" in k for k in env)
    module, _, name = env["AIRFLOW__CORE__AUTH_MANAGER"].rpartition(".")
    assert getattr(importlib.import_module(module), name).__name__ == "FabAuthManager"  # in requirements.lock
    commands = list(service_commands(stack["services"]["airflow-init"]))
    create = next(argv for argv in commands if argv[:3] == ["airflow", "users", "create"])
    args = cli_parser.get_parser().parse_args(create[1:])
    assert (args.username, args.password, args.role) == ("${AIRFLOW_ADMIN_USER}", "${AIRFLOW_ADMIN_PASSWORD}", "Admin")
    assert commands.index(create) > commands.index(["airflow", "db", "migrate"])  # FAB's tables exist by then
    values = yaml.safe_load(HELM_VALUES.read_text(encoding="utf-8"))
    assert values["config"]["core"]["auth_manager"] == env["AIRFLOW__CORE__AUTH_MANAGER"]
    assert values["createUserJob"]["enabled"] is True
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    assert re.search(r"^apache-airflow-providers-fab==", lock, re.MULTILINE)
    assert re.search(r"^apache-airflow==3\.3\.2$", lock, re.MULTILINE)  # added without upgrading Airflow


def test_the_local_demo_keeps_the_simple_auth_manager() -> None:
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "airflow.cfg")
    assert parser["core"]["auth_manager"].endswith("simple_auth_manager.SimpleAuthManager")


def test_env_example_placeholders_are_refused_by_the_service(env_example: dict[str, str]) -> None:
    from autoretrain.serving.access import secret_problem

    for name in ("AUTORETRAIN_FEEDBACK_TOKEN", "AUTORETRAIN_ADMIN_TOKEN", "AUTORETRAIN_ROUTING_SALT"):
        assert secret_problem(env_example[name]), f"the service would start with {name}={env_example[name]!r}"


def test_prometheus_alert_rules_use_metrics_the_service_exposes(stack: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text(encoding="utf-8"))
    rules_file = PROMETHEUS_FILE.parent / "alerts.yml"
    mounted = {host_path(stack["services"]["prometheus"], target) for target in config["rule_files"]}
    assert mounted == {rules_file}
    rules = [r for g in yaml.safe_load(rules_file.read_text(encoding="utf-8"))["groups"] for r in g["rules"]]
    assert {r["alert"]: r["labels"]["severity"] for r in rules} == {"PredictionLogBacklog": "warning",
                                                                    "PredictionLogDropping": "critical"}
    exposed = exposed_series()
    for rule in rules:
        used = set(PROMQL_METRIC.findall(rule["expr"]))
        assert used and used <= set(exposed), rule["expr"]
