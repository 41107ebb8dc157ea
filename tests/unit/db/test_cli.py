"""``autoretrain db upgrade | downgrade | current | history`` as a subprocess, on a temporary SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoretrain.db import migrate
from autoretrain.db.engine import make_engine
from tests.unit.db import checks

BIN = Path(sys.executable).parent


def autoretrain(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "autoretrain"), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def errors(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [text.split(" ERROR ", 1)[1] for text in done.stderr.splitlines() if " ERROR " in text]


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'cli' / 'autoretrain.db'}"


def test_upgrade_current_downgrade_history(url) -> None:
    def db(*args: str) -> tuple[int, str]:
        done = autoretrain("db", "--database-url", url, *args)
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, done.stdout

    assert db("current") == (1, f"{url}: none (this code needs 0005: run `autoretrain db upgrade`)\n")
    assert db("upgrade", "0001") == (0, f"{url}: none -> 0001\n")
    assert db("current") == (1, f"{url}: 0001 (this code needs 0005: run `autoretrain db upgrade`)\n")
    assert db("upgrade") == (0, f"{url}: 0001 -> 0005\n")
    assert db("upgrade") == (0, f"{url}: already at 0005\n")
    assert db("current") == (0, f"{url}: 0005 (head)\n")
    done = autoretrain("db", "current", "--database-url", url)  # the option after the sub-command works too
    assert (done.returncode, done.stdout) == (0, f"{url}: 0005 (head)\n")
    assert db("downgrade", "0001") == (0, f"{url}: 0005 -> 0001\n")
    assert migrate.current(url) == "0001"
    assert db("history") == (0, "base -> 0001: Adopt the schema of the code before migrations: six tables and the "
                                "alias_audit append-only triggers.\n0001 -> 0002: Composite indexes for the "
                                "hot queries: a model's served predictions in a time range, its latest windows.\n"
                                "0002 -> 0003: The table ``model_artifacts``: each model version AutoRetrain "
                                "registered, its digest and HMAC.\n"
                                "0003 -> 0004: Write-ahead intents of alias moves: ``alias_intents`` (a move is "
                                "committed here before MLflow is touched).\n"
                                "0004 -> 0005 (head): The alert cool-down claim: one row per ``dedup_key``, claimed "
                                "by a conditional write.\n")


def test_upgrade_uses_the_settings_database_url_and_keeps_rows(url) -> None:
    checks.write_legacy_database(url)
    done = autoretrain("db", "upgrade", env={"AUTORETRAIN_DATABASE_URL": url})
    assert (done.returncode, done.stdout) == (0, f"{url}: none -> 0005\n"), done.stderr
    engine = make_engine(url)
    checks.assert_rows_kept(engine)
    engine.dispose()


def test_an_unknown_revision_is_exit_2_with_one_line(url) -> None:
    done = autoretrain("db", "--database-url", url, "downgrade", "0042")
    assert (done.returncode, done.stdout) == (2, "")
    assert errors(done) == [f"autoretrain.cli.db: downgrade to 0042 of database {url} failed: Can't locate revision "
                            "identified by '0042' (the revisions: `autoretrain db history`)"]


def test_an_unreachable_database_is_exit_75_and_the_password_stays_hidden() -> None:
    done = autoretrain("db", "--database-url", "postgresql://autoretrain:s3cret@127.0.0.1:9/autoretrain", "upgrade")
    assert (done.returncode, done.stdout) == (75, "")
    (message,) = errors(done)
    assert message.startswith("autoretrain.cli.db: database postgresql://autoretrain:***@127.0.0.1:9/autoretrain: ")
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr


def test_downgrade_needs_a_revision() -> None:
    done = autoretrain("db", "downgrade")
    assert done.returncode == 2 and "the following arguments are required: revision" in done.stderr
