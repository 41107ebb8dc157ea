"""The unit tests of ``autoretrain.data`` read datasets they write into ``tmp_path``.

The source policy (``data_allowed_roots``) admits only the project's ``data/`` and
``<state_dir>/data`` by default, so here the test's own ``tmp_path`` is added to every policy;
nothing else is relaxed. The policy itself is tested against hostile sources in
``tests/integration/test_hostile_sources.py``, where this fixture does not apply.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from autoretrain.config import Settings
from autoretrain.data import sources
from autoretrain.data.sources import SourcePolicy


@pytest.fixture(autouse=True)
def tmp_path_is_an_allowed_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = SourcePolicy.from_settings.__func__  # type: ignore[attr-defined]

    def widened(cls: type[SourcePolicy], settings: Settings) -> SourcePolicy:
        policy = original(cls, settings)
        return dataclasses.replace(policy, roots=(*policy.roots, tmp_path.resolve()))

    monkeypatch.setattr(SourcePolicy, "from_settings", classmethod(widened))
    monkeypatch.setattr(sources, "default_policy", lambda: SourcePolicy.from_settings(Settings()))
