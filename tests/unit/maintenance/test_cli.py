"""``autoretrain maintenance purge``: the JSON it prints, a dry run, the database check."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from autoretrain.cli.main import main
from autoretrain.db.engine import make_engine
from autoretrain.db.schema import predictions
from tests.conftest import migrated


def _row(request_id: str, age: timedelta) -> dict:
    return {"request_id": request_id, "created_at": datetime.now(UTC) - age, "model_name": "sms-spam",
            "model_version": "1", "variant": "champion", "role": "served", "user_id": None, "text": "hi",
            "probability": 0.1, "label": "ham", "latency_ms": 1.0}


def test_purge_prints_what_it_did_and_a_dry_run_changes_nothing(tmp_path, monkeypatch, capsys):
    url = migrated(f"sqlite:///{tmp_path / 'cli.db'}")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(predictions.insert(), [_row("old", timedelta(days=200)), _row("new", timedelta(days=1))])
    monkeypatch.setenv("AUTORETRAIN_DATABASE_URL", url)
    assert main(["-q", "maintenance", "purge", "--dry-run", "--rows-only"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert (dry["rows"]["dry_run"], dry["rows"]["prediction_log"]) == (True, 1) and "artifacts" not in dry
    assert main(["-q", "maintenance", "purge", "--rows-only"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"]["prediction_log"] == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(predictions.c.request_id)).scalars().all() == ["new"]
    engine.dispose()


def test_a_database_behind_is_exit_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUTORETRAIN_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    assert main(["-q", "maintenance", "purge", "--rows-only"]) == 2
    assert capsys.readouterr().out == ""
