"""`python tools/db_revision.py "what changes"`: a new Alembic revision of AutoRetrain's database.

Migrates a throwaway SQLite database to the current head, lets alembic's autogenerate compare it
with ``autoretrain.db.schema.metadata`` (changed first, by you) and writes
``include/autoretrain/db/migrations/versions/<next number>_<message>.py`` with the operations it
found, in batch mode (SQLite needs it for most ALTERs). ``--empty`` writes the skeleton only.

Then review the file: autogenerate does not see data moves, renames (it proposes drop + add) or
the alias_audit triggers (a batch copy of that table on SQLite drops them: re-create them, see
``schema.APPEND_ONLY_DDL``); and test it with rows on SQLite and Postgres (tests/unit/db/checks.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from alembic import command

from autoretrain.db import migrate
from autoretrain.db.engine import make_engine


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("message", help="what the revision changes (also its file name)")
    parser.add_argument("--empty", action="store_true", help="no autogenerate: an empty upgrade()/downgrade()")
    args = parser.parse_args(argv)
    rev_id = f"{int(migrate.head()) + 1:04d}"
    with tempfile.TemporaryDirectory(prefix="autoretrain-revision-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'head.db'}"
        migrate.upgrade(url)
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                script = command.revision(migrate.config(conn), message=args.message, rev_id=rev_id,
                                          autogenerate=not args.empty)
        finally:
            engine.dispose()
    for each in script if isinstance(script, list) else [script]:
        if each is not None:
            print(f"wrote {each.path}: review it, then test it with rows on SQLite and Postgres")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
