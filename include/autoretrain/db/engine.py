"""The one engine factory of AutoRetrain's database: its URL from the settings, engines, redaction.

Every engine on AutoRetrain's tables (the prediction service, the DAG tasks, the CLI, the
migrations) comes from :func:`make_engine`, so SQLite always gets WAL and a busy timeout and
Postgres a small, pre-pinged pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from autoretrain.config import Settings

SQLITE_BUSY_TIMEOUT_SECONDS = 30


def database_url(settings: Settings) -> str:
    """``settings.database_url``, or a SQLite file ``autoretrain.db`` under ``state_dir`` (folder created)."""
    if settings.database_url:
        return settings.database_url
    settings.state_path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.state_path / 'autoretrain.db'}"


def redacted(url: str | sa.URL) -> str:
    """The URL with its password masked, for messages and logs."""
    return sa.make_url(url).render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so several processes can share it."""
    if url.startswith("sqlite"):
        path = sa.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                                                     "check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
