"""Run Alembic migrations under a lock, so several nodes can run ``idp init`` at once."""
from __future__ import annotations

import contextlib
import fcntl
import os

from pathlib import Path

from flask import current_app
from sqlalchemy import text

from .db import db

_LOCK_ID = 0x1D9A1417


def no_statement_timeout(conn) -> None:
    """Lift IDP_DB_STATEMENT_TIMEOUT for this PostgreSQL session (migrations, the migration lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET statement_timeout = 0"))
        conn.commit()


def restore_statement_timeout(conn) -> None:
    """Back to the connection's own setting (its start-up options) before it returns to the pool."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("RESET statement_timeout"))
        conn.commit()


@contextlib.contextmanager
def _lock():
    engine = db.engine
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            # Waiting for another node's migration may take longer than IDP_DB_STATEMENT_TIMEOUT.
            no_statement_timeout(conn)
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_ID})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_ID})
                conn.commit()
                restore_statement_timeout(conn)
    else:
        path = os.path.join(current_app.instance_path, ".migrate.lock")
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def upgrade_database() -> None:
    """Alembic ``upgrade head`` (imported here: Alembic is only needed by ``idp init``)."""
    from flask_migrate import Migrate, upgrade

    app = current_app._get_current_object()
    if "migrate" not in app.extensions:
        Migrate(app, db, directory=str(MIGRATIONS))
    with _lock():
        upgrade(directory=str(MIGRATIONS))
