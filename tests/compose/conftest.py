"""One compose stack for the module: built, brought up, and removed with its volumes afterwards.

The figures of the run (build, up, each step) go to .autoretrain/compose/figures.json; `make
test-compose` prints them as one JSON line last.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devstack import compose_stack as cs

FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="session")
def figures() -> Iterator[dict[str, Any]]:
    began = time.monotonic()
    yield FIGURES
    FIGURES["total_s"] = round(time.monotonic() - began, 1)
    cs.STATE.mkdir(parents=True, exist_ok=True)
    (cs.STATE / "figures.json").write_text(json.dumps(FIGURES) + "\n")


@pytest.fixture(scope="session")
def stack(figures: dict[str, Any]) -> Iterator[cs.ComposeStack]:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: `make test-compose` installs it (apt-get install -y podman runc "
                    "debootstrap); see docs/deploy.md")
    reuse = os.environ.get("AUTORETRAIN_COMPOSE_REUSE")  # a running project (development): no build, no teardown
    if reuse:
        yield cs.ComposeStack(reuse, cs.STATE / f"{reuse}.env")
        return
    project = f"ar-{uuid.uuid4().hex[:8]}"
    env_file = cs.STATE / f"{project}.env"
    values = cs.fresh_env(workers=2)
    cs.write_env(env_file, values)
    with cs.env_file_in_build_context(values) as env_in_context:
        figures["build"] = cs.build_images(progress=lambda m: print(m, flush=True))
    figures["env_in_build_context"] = env_in_context
    stack = cs.ComposeStack(project, env_file)
    try:
        figures["up_s"] = stack.up(progress=lambda m: print(m, flush=True))
        yield stack
    finally:
        logs = cs.STATE / f"{project}-logs"
        logs.mkdir(parents=True, exist_ok=True)
        for service in stack.services():
            for name in stack.containers(service):
                (logs / f"{name}.log").write_text(stack.logs(name, tail=400))
        began = time.monotonic()
        stack.destroy()
        figures["destroy_s"] = round(time.monotonic() - began, 1)
        env_file.unlink(missing_ok=True)
        leftovers = cs.podman("ps", "-a", "--format", "{{.Names}}", "--filter",
                              f"label=io.podman.compose.project={project}").stdout.split()
        assert not leftovers and not stack.volumes(), (leftovers, stack.volumes())
