"""The podman override of `make test-compose` swaps images and the test's clock only; the driver's start order."""

from __future__ import annotations

from pathlib import Path

import yaml

from devstack import compose_stack as cs

ROOT = Path(__file__).resolve().parents[3]


class _Loader(yaml.SafeLoader):
    """Reads the compose spec's `!override` tag (it replaces instead of merging) as its plain value."""


_Loader.add_constructor("!override", lambda loader, node: (
    loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else loader.construct_mapping(node)))

STAND_INS = {"postgres", "postgres-init", "redis", "minio", "minio-init"}
#: settings of AutoRetrain and Airflow the test sets for its clock and budget (docs/deploy.md)
TEST_SETTINGS = {"AUTORETRAIN_CANARY_MINUTES", "AUTORETRAIN_CANARY_PERCENT", "AUTORETRAIN_CANARY_POKE_SECONDS",
                 "AUTORETRAIN_RELOAD_INTERVAL_SECONDS", "AUTORETRAIN_FAMILIES", "AUTORETRAIN_CV_FOLDS",
                 "AUTORETRAIN_BOOTSTRAP_SAMPLES", "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"}


def test_the_override_swaps_only_what_cannot_be_pulled() -> None:
    base = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    override = yaml.load((ROOT / "tools/compose/podman.override.yaml").read_text(), Loader=_Loader)  # noqa: S506
    assert set(override) == {"services"}
    for name, spec in override["services"].items():
        assert name in base["services"], name
        if name in STAND_INS:
            assert set(spec) <= {"image", "command", "entrypoint", "volumes", "healthcheck", "init"}, (name, spec)
        else:  # AutoRetrain's and Airflow's services keep their image, command, volumes and checks
            assert set(spec) == {"environment"}, (name, spec)
            assert set(spec["environment"]) <= TEST_SETTINGS, (name, spec["environment"])
    for name in ("postgres", "postgres-init", "redis"):
        assert override["services"][name]["image"].startswith("localhost/autoretrain-"), name


def test_services_start_after_what_they_wait_for() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]
    services = {name: spec for name, spec in services.items() if not spec.get("profiles")}
    stack = cs.ComposeStack.__new__(cs.ComposeStack)
    stack.services = lambda: services  # type: ignore[method-assign]
    order = stack.start_order()
    assert sorted(order) == sorted(services)
    for name, spec in services.items():
        for dep in cs._depends_on(spec):
            assert order.index(dep) < order.index(name), (dep, name)
    assert cs._depends_on(services["airflow-init"])["postgres-init"] == "service_completed_successfully"
    assert order[-1] in {"prediction", "airflow-worker", "airflow-triggerer"}


def test_a_fresh_env_has_every_secret_of_the_example_and_no_example_value() -> None:
    example = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
               if "=" in line and not line.startswith("#") and line.split("=", 1)[1] == "change-me"}
    values = cs.fresh_env()
    assert example <= set(values), example - set(values)
    assert not [key for key in example if values[key] in ("", "change-me") or len(values[key]) < 24]
    assert len({values[key] for key in example}) == len(example)  # no two secrets alike
