"""Migrations: the same Alembic history builds the schema on SQLite and PostgreSQL, and it matches
the models exactly (no drift between migrations/ and the code)."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from idp import create_app
from idp.db import db
from tests.conftest import _config


def _upgrade_and_diff(app):
    from idp.keystore.service import ensure_keys
    from idp.migrations_lock import upgrade_database

    with app.app_context():
        ensure_keys(app.config)
        upgrade_database()
        upgrade_database()  # idempotent
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, db.metadata)
        db.engine.dispose()
    return diff


def test_sqlite_migrations_match_models(tmp_path):
    assert _upgrade_and_diff(create_app(_config(tmp_path), load_keys=False)) == []


@pytest.mark.postgres
def test_postgresql_migrations_match_models(tmp_path, postgres_url):
    assert _upgrade_and_diff(create_app(_config(tmp_path, db_url=postgres_url), load_keys=False)) == []


@pytest.mark.postgres
def test_concurrent_init_on_postgresql(tmp_path, postgres_url):
    """Several nodes running `idp init` at once: migrations run once, under a database lock."""
    import subprocess
    import sys
    from pathlib import Path

    idp = str(Path(sys.executable).parent / "idp")
    env = {"IDP_DATABASE_URL": postgres_url, "IDP_KEYS_DIR": str(tmp_path / "keys"), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([idp, "init"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    kids = {line for out, _ in outs for line in out.splitlines()}
    assert kids  # every node printed its JSON line
    signing = list((tmp_path / "keys" / "signing").glob("*.pem"))
    assert len(signing) == 2  # keys created once despite the race


@pytest.mark.postgres
def test_statement_timeout_bounds_app_statements_but_not_migrations(tmp_path, postgres_url):
    """IDP_DB_STATEMENT_TIMEOUT is PostgreSQL's ``statement_timeout`` on every app connection (a
    statement running longer is cancelled: SQLSTATE 57014, query_canceled), lifted for ``idp init``'s
    migrations and migration lock, and restored before their connection goes back to the pool."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from idp.migrations_lock import no_statement_timeout, restore_statement_timeout

    app = create_app({**_config(tmp_path, db_url=postgres_url), "DB_STATEMENT_TIMEOUT": 1}, load_keys=False)
    with app.app_context():
        try:
            with db.engine.connect() as conn:
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "1s"
                with pytest.raises(OperationalError) as cancelled:
                    conn.execute(text("SELECT pg_sleep(3)"))
                assert cancelled.value.orig.sqlstate == "57014"
                conn.rollback()
                no_statement_timeout(conn)
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "0"
                conn.execute(text("SELECT pg_sleep(1.2)"))  # a migration step longer than the limit
                restore_statement_timeout(conn)
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "1s"
        finally:
            db.engine.dispose()
    off = create_app({**_config(tmp_path, db_url=postgres_url), "DB_STATEMENT_TIMEOUT": 0}, load_keys=False)
    with off.app_context():
        try:
            with db.engine.connect() as conn:
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "0"
        finally:
            db.engine.dispose()
