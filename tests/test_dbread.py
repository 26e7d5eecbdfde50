"""``idp.dbread``: one-statement reads on the pooled driver connection give the rows the ORM gives,
see a request's own writes, and fail and recover as SQLAlchemy's own execution does."""
from __future__ import annotations

import gc
import secrets
import shutil
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Integer, bindparam, cast, exc, func, select, text, update

from idp.db import db, utcnow
from idp.dbread import DirectRead, DirectWrite, NothingWritten, read_first, write_together
from idp.oauth.models import Token

_T = Token.__table__
BY_DIGEST = DirectRead(select(_T).where(_T.c.access_digest == bindparam("digest")))


def _token_row(digest: str, **extra) -> dict:
    now = utcnow().replace(microsecond=123456)
    row = {"client_id": "c1", "family": "f" * 32, "grant_type": "authorization_code", "scope": "openid email",
           "access_digest": digest, "jti": "j-" + digest[:8], "access_expires_at": now + timedelta(minutes=5),
           "offline": True, "amr": ["pwd", "otp"], "claims_request": {"userinfo": {"email": None}},
           "issued_at": now, "auth_time": now - timedelta(seconds=30), "acr": "urn:idp:loa:2"}
    row.update(extra)
    return row


def _insert_committed(**row) -> None:
    db.session.execute(_T.insert(), row)
    db.session.commit()


def _same_as_the_session(digest: str) -> None:
    direct = BY_DIGEST.first(db.engine, {"digest": digest})
    through_orm = db.session.execute(BY_DIGEST.stmt, {"digest": digest}).first()
    db.session.rollback()
    assert direct is not None and tuple(direct) == tuple(through_orm)
    assert direct._fields == tuple(through_orm._fields)
    # Typed as the columns say (SQLite hands back strings and integers for these).
    assert isinstance(direct.access_expires_at, datetime) and direct.access_expires_at.microsecond == 123456
    assert direct.offline is True and direct.refresh_digest is None and direct.revoked_at is None
    assert direct.amr == ["pwd", "otp"] and direct.claims_request == {"userinfo": {"email": None}}


def test_rows_are_the_rows_the_orm_reads(app):
    _insert_committed(**_token_row("a" * 64))
    _same_as_the_session("a" * 64)
    assert BY_DIGEST.first(db.engine, {"digest": "b" * 64}) is None


def test_a_request_reads_its_own_uncommitted_write(app):
    """Inside a transaction the read goes through the session: it sees what the request wrote."""
    db.session.execute(_T.insert(), _token_row("c" * 64))
    assert read_first(BY_DIGEST, {"digest": "c" * 64}).jti == "j-cccccccc"
    db.session.rollback()
    assert read_first(BY_DIGEST, {"digest": "c" * 64}) is None


def test_a_request_reads_what_it_added_but_did_not_flush(app):
    """An object added to the session is not on any connection yet: the read goes through the
    session, whose autoflush writes it first (the ORM's own read-your-writes)."""
    db.session.add(Token(**_token_row("m" * 64)))
    assert read_first(BY_DIGEST, {"digest": "m" * 64}).jti == "j-mmmmmmmm"
    db.session.rollback()
    assert read_first(BY_DIGEST, {"digest": "m" * 64}) is None


def test_outside_a_transaction_no_session_is_made(app):
    """No transaction, no session work: the read runs on a pooled connection and leaves the
    session untouched (nothing to roll back at teardown)."""
    _insert_committed(**_token_row("d" * 64))
    db.session.remove()
    assert read_first(BY_DIGEST, {"digest": "d" * 64}).jti == "j-dddddddd"
    assert not db.session.registry.has()


def test_column_names_must_be_unique():
    from idp.accounts.models import Person

    with pytest.raises(ValueError, match="label them"):
        DirectRead(select(_T.c.id, Person.__table__.c.id))


@pytest.mark.postgres
def test_postgresql_reads_in_autocommit_and_recovers_from_a_restart(tmp_path, postgres_url, template_dir):
    """On PostgreSQL: the same rows; no transaction is left open on the pooled connection; a lost
    connection is SQLAlchemy's ``OperationalError`` (what the 503 answer catches) and the pool is
    replaced, so the next read succeeds."""
    from idp import create_app
    from idp.migrations_lock import upgrade_database
    from tests.conftest import _config

    shutil.copytree(template_dir / "keys", tmp_path / "keys")
    app = create_app(_config(tmp_path, db_url=postgres_url, DB_PING_AFTER_IDLE=3600))
    with app.app_context():
        upgrade_database()
        _insert_committed(**_token_row("e" * 64))
        db.session.remove()
        _same_as_the_session("e" * 64)
        db.session.remove()
        for _ in range(6):  # a prepared statement from the second run on
            assert BY_DIGEST.first(db.engine, {"digest": "e" * 64}).jti == "j-eeeeeeee"
        with db.engine.connect() as admin:
            idle_in_tx = admin.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%'")).scalar()
            assert idle_in_tx == 0
            # Cut every other connection of the pool, as a database restart would.
            admin.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            admin.commit()
        with pytest.raises(exc.OperationalError) as caught:
            BY_DIGEST.first(db.engine, {"digest": "e" * 64})
        assert caught.value.connection_invalidated
        assert BY_DIGEST.first(db.engine, {"digest": "e" * 64}).jti == "j-eeeeeeee"
        # Any other error is SQLAlchemy's too, and its connection is not returned to the pool in autocommit.
        bad = DirectRead(select(cast(bindparam("v"), Integer).label("n")))
        with pytest.raises(exc.DataError):
            bad.first(db.engine, {"v": "not a number"})
        pooled = [db.engine.raw_connection() for _ in range(3)]
        assert all(c.driver_connection.autocommit is False for c in pooled)
        for c in pooled:
            c.close()
        db.engine.dispose()


_REVOKE = DirectWrite(update(_T).where(_T.c.id == bindparam("row_id"), _T.c.revoked_at.is_(None))
                      .values(revoked_at=bindparam("when")))
_STORE = DirectWrite(_T.insert())


def _count(digest: str) -> int:
    n = db.session.execute(select(func.count()).select_from(_T).where(_T.c.access_digest == digest)).scalar()
    db.session.rollback()
    return n


def _writes_together() -> None:
    """``write_together``: all of the group or none of it, committed at once, the connection reusable."""
    _insert_committed(**_token_row("f" * 64))
    first = BY_DIGEST.first(db.engine, {"digest": "f" * 64})
    db.session.remove()
    # The guarded step changes its one row: the group is written and committed (seen on another connection).
    write_together((_REVOKE, {"row_id": first.id, "when": utcnow()}, True), (_STORE, _token_row("g" * 64), False))
    assert BY_DIGEST.first(db.engine, {"digest": "f" * 64}).revoked_at is not None and _count("g" * 64) == 1
    # Now it changes none (already revoked): nothing of the group is written.
    with pytest.raises(NothingWritten):
        write_together((_REVOKE, {"row_id": first.id, "when": utcnow()}, True), (_STORE, _token_row("h" * 64), False))
    assert _count("h" * 64) == 0
    # A statement fails (the access digest is unique): SQLAlchemy's error, and the step before it is undone.
    with pytest.raises(exc.IntegrityError):
        write_together((_STORE, _token_row("i" * 64), False), (_STORE, _token_row("g" * 64, jti="j-other"), False))
    assert _count("i" * 64) == 0
    # In a request that already holds a connection, the steps join its transaction (and its rollback).
    db.session.execute(text("SELECT 1"))
    write_together((_STORE, _token_row("k" * 64), False))
    db.session.rollback()
    assert _count("k" * 64) == 0
    # The pool's connections are all usable and none is left in a transaction.
    for _ in range(3):
        write_together((_STORE, _token_row(secrets.token_hex(32)), False))
    assert BY_DIGEST.first(db.engine, {"digest": "g" * 64}).jti == "j-gggggggg"


def test_writes_together_all_or_nothing(app):
    _writes_together()


@pytest.mark.postgres
def test_postgresql_writes_together_in_one_pipeline(tmp_path, postgres_url, template_dir):
    """The same on PostgreSQL, where the group goes in psycopg's pipeline mode; afterwards no pooled
    connection is idle in a transaction or left in autocommit."""
    from idp import create_app
    from idp.migrations_lock import upgrade_database
    from tests.conftest import _config

    shutil.copytree(template_dir / "keys", tmp_path / "keys")
    app = create_app(_config(tmp_path, db_url=postgres_url, DB_PING_AFTER_IDLE=3600))
    with app.app_context():
        upgrade_database()
        db.session.remove()
        _writes_together()
        db.session.remove()
        with db.engine.connect() as admin:
            idle_in_tx = admin.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%'")).scalar()
        assert idle_in_tx == 0
        pooled = [db.engine.raw_connection() for _ in range(3)]
        assert all(c.driver_connection.autocommit is False for c in pooled)
        for c in pooled:
            c.close()
        db.engine.dispose()


_BACKEND = DirectRead(select(func.pg_backend_pid().label("pid")))


def _terminate_others() -> None:
    """Cut every other connection to the database, as a database restart would."""
    with db.engine.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        admin.commit()


@pytest.mark.postgres
def test_a_server_thread_holds_its_connection_and_recovers(tmp_path, postgres_url, template_dir):
    """``DB_HOLD_CONNECTION`` (``idp serve``): a thread's one-statement reads and writes use one connection,
    kept in autocommit and out of the pool between requests (no transaction left open); a connection
    cut while in use is SQLAlchemy's ``OperationalError`` once (the 503) and replaced on the next
    read; one cut while it sat unused longer than ``DB_PING_AFTER_IDLE`` is found by the ping and
    replaced without an error; a disposed pool's is replaced; ``release_held`` gives it back."""
    from idp import create_app
    from idp.dbread import release_held, write_one
    from idp.migrations_lock import upgrade_database
    from tests.conftest import _config

    shutil.copytree(template_dir / "keys", tmp_path / "keys")
    app = create_app(_config(tmp_path, db_url=postgres_url, DB_PING_AFTER_IDLE=3600, DB_HOLD_CONNECTION=1))
    with app.app_context():
        upgrade_database()
        db.session.remove()
        app.config["DB_HOLD_CONNECTION"] = 0  # the default (tests, the CLI): checked out and back per statement
        read_first(_BACKEND, {})
        assert db.engine.pool.checkedout() == 0
        app.config["DB_HOLD_CONNECTION"] = 1
        try:
            pid = read_first(_BACKEND, {}).pid
            assert read_first(_BACKEND, {}).pid == pid and db.engine.pool.checkedout() == 1
            assert write_one(_STORE, _token_row("m" * 64)) == 1 and _count("m" * 64) == 1  # committed
            db.session.remove()
            assert read_first(BY_DIGEST, {"digest": "m" * 64}).jti == "j-mmmmmmmm"
            with db.engine.connect() as admin:
                states = admin.execute(text("SELECT state FROM pg_stat_activity WHERE pid = :p"), {"p": pid}).scalar()
            assert states == "idle"

            _terminate_others()
            with pytest.raises(exc.OperationalError) as caught:
                read_first(_BACKEND, {})
            assert caught.value.connection_invalidated
            replaced = read_first(_BACKEND, {}).pid
            assert replaced != pid

            app.config["DB_PING_AFTER_IDLE"] = 0  # every use after a pause: pinged first
            _terminate_others()
            after_ping = read_first(_BACKEND, {}).pid
            assert after_ping != replaced

            db.engine.dispose()
            assert read_first(_BACKEND, {}).pid != after_ping
        finally:
            release_held()
        assert db.engine.pool.checkedout() == 0

        # A thread that ends (Granian stops idle blocking threads) closes its held connection.
        def serve_one():
            with app.app_context():
                seen.append(read_first(_BACKEND, {}).pid)

        seen: list = []
        worker = threading.Thread(target=serve_one)
        worker.start()
        worker.join()
        del worker
        gc.collect()
        assert seen and db.engine.pool.checkedout() == 0
        with db.engine.connect() as admin:  # closed, not handed back to the pool
            assert admin.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": seen[0]}).scalar() == 0
        # And no connection goes back to the pool in autocommit, whoever checks it in.
        raw = db.engine.raw_connection()
        raw.driver_connection.autocommit = True
        raw.close()
        again = db.engine.raw_connection()
        assert again.driver_connection.autocommit is False
        again.close()
        db.engine.dispose()
