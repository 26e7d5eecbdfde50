"""The database handle and the one transaction helper services use."""
from __future__ import annotations

import contextlib
from datetime import datetime, timezone

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)


def utcnow() -> datetime:
    """Naive UTC now: stored the same way on SQLite and PostgreSQL."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def epoch(dt: datetime) -> int:
    return int(dt.replace(tzinfo=timezone.utc).timestamp())


_INSERT_UNLESS_PRESENT: dict = {}


def insert_unless_present(model, values: dict, key: list[str]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: concurrent writers of the same row must not collide.

    A Core statement on the table, built once per table, conflict key, columns and dialect (the values
    are its parameters): the ORM's bulk-insert path and a new statement on each call cost more than
    the round trip."""
    dialect = db.session.get_bind().dialect.name
    cache_key = (model.__table__, tuple(key), tuple(values), dialect)
    stmt = _INSERT_UNLESS_PRESENT.get(cache_key)
    if stmt is None:
        from sqlalchemy import bindparam

        stmt = _INSERT_UNLESS_PRESENT[cache_key] = (
            unless_present(model.__table__, key, dialect).values({name: bindparam(name) for name in values}))
    db.session.execute(stmt, values)


def unless_present(table, key: list[str], dialect: str):
    """``INSERT ... ON CONFLICT (key) DO NOTHING`` on ``table``, as the dialect spells it."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing(index_elements=key)


@contextlib.contextmanager
def transaction():
    """One use case, one commit; rolls back on any exception."""
    try:
        yield db.session
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection before use when it sat unused more than ``idle_seconds``.

    SQLAlchemy's ``pool_pre_ping`` checks every checkout: one more round trip on every request,
    about a third of a token lookup's database time. A connection in steady use is known good; one
    that sat idle may have been cut (a database restart, a firewall), so only that one is pinged,
    and replaced if the ping fails (SQLAlchemy's pessimistic disconnect handling). A connection cut
    while in use fails its statement, which is answered 503 and invalidates the pool, so the next
    checkouts reconnect.
    """
    from time import monotonic

    from sqlalchemy import exc

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record):
        record.info["idp.idle_since"] = monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy):
        since = record.info.pop("idp.idle_since", None)
        if since is not None and monotonic() - since <= idle_seconds:
            return
        try:
            ok = engine.dialect.do_ping(dbapi_connection)
        except Exception as err:  # noqa: BLE001 - the driver's own error for a dead connection
            raise exc.DisconnectionError("pooled connection is gone") from err
        if ok is False:
            raise exc.DisconnectionError("pooled connection is gone")


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):  # pragma: no cover - driver glue
    module = type(dbapi_connection).__module__
    if module.startswith("sqlite3"):
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()
