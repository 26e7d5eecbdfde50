"""One-statement reads, and small groups of writes, on the pooled driver connection: the lookups on
every bearer request and the writes of the single sign-on round trip.

A subsite's back end introspects tokens and reads UserInfo many times a second. Each is one indexed
SELECT, which costs the driver about 0.1 ms of CPU; run through the ORM session it cost about
0.8 ms, and through a Core connection 0.5 ms (``bench/`` profiles: execution context, result
metadata, session and transaction state, the pool's reset). ``DirectRead`` keeps SQLAlchemy for
what it is good at (the statement, compiled once per dialect; the pool and its checkout events; each
column type's own result conversion) and runs the statement on the pooled DBAPI connection itself:

- in autocommit, so PostgreSQL sees one round trip (no BEGIN, no ROLLBACK on check-in), as a
  server-side prepared statement (psycopg's ``prepare=True``);
- rows come back as named tuples with the statement's column names, converted by the columns' types
  (SQLite's date strings become ``datetime``, as through the ORM);
- a driver error becomes SQLAlchemy's (``sqlalchemy.exc.OperationalError`` and the rest), and a lost
  connection invalidates the pool as SQLAlchemy's own execution does, so the 503 answer and the
  recovery after a database restart are the same as on every other path; a connection that failed
  in any other way is discarded too (it never goes back to the pool in autocommit).

A server thread holds one such connection for these statements (``held``, turned on by ``idp serve``:
``DB_HOLD_CONNECTION``) instead of checking one out of the pool and back for each, which cost about
a fifth of a bearer request's CPU (the pool's bookkeeping and events, switching autocommit on and
off, the reset on check-in): it stays in autocommit, is pinged before use after
``DB_PING_AFTER_IDLE`` seconds unused and replaced if the ping fails, and is dropped on any error
(a lost connection invalidates the pool as above), or when the engine's pool is replaced
(``engine.dispose()``). ``release_held`` gives it back.

Only for a single SELECT that needs no transaction. ``read_first`` goes through the session instead
when the session already has a transaction open in this request, so a request reads its own writes.
``write_together`` does the same for a few INSERTs and UPDATEs that belong together (one
transaction, committed at once), with the same error handling.
"""
from __future__ import annotations

import threading
import weakref
from collections import namedtuple
from time import monotonic

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select


class _Plan:
    """The statement compiled for one dialect, and how to run it there."""

    __slots__ = ("_compiled", "autocommit", "binds", "execute_kw", "positional", "processors", "sql")

    def __init__(self, stmt, dialect, column_keys: list[str] | None = None):
        compiled = stmt.compile(dialect=dialect, column_keys=column_keys)
        self.sql = compiled.string
        self.positional = tuple(compiled.positiontup) if compiled.positional else None
        self.binds = {name: proc for name, bind in compiled.binds.items()
                      if (proc := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None}
        self.processors = tuple(col.type.dialect_impl(dialect).result_processor(dialect, None)
                                for col in getattr(stmt, "selected_columns", ()))
        psycopg = dialect.name == "postgresql" and dialect.driver == "psycopg"
        self.autocommit = psycopg
        self.execute_kw = {"prepare": True} if psycopg else {}
        self._compiled = compiled

    def arguments(self, params: dict):
        values = self._compiled.construct_params(params)
        for name, proc in self.binds.items():
            values[name] = proc(values[name])
        return tuple(values[name] for name in self.positional) if self.positional is not None else values


def _on_driver(engine: Engine, work):
    """``work(conn, running)`` on a pooled driver connection, with SQLAlchemy's error handling.

    ``running`` is a one-element list ``work`` keeps the statement it runs in, ``(plan, args)``, so an
    error names it. A driver error becomes SQLAlchemy's, and a lost connection invalidates the pool as
    SQLAlchemy's own execution does; a connection that failed in any other way is discarded too,
    never returned to the pool in a state we are not sure of (autocommit left on, a transaction open)."""
    running: list = [(None, None)]
    fairy = _checkout(engine, running)
    try:
        return work(fairy.driver_connection, running)
    except NothingWritten:
        raise  # rolled back by ``work``: the connection is sound
    except BaseException as err:
        failure = _discarded(engine, fairy, err, running)
        if failure is err:
            raise
        raise failure from err
    finally:
        fairy.close()


def _checkout(engine: Engine, running: list):
    """A pooled connection (the pool's checkout events run: ``db.ping_when_idle``), or SQLAlchemy's error."""
    dialect = engine.dialect
    try:
        return engine.raw_connection()
    except dialect.loaded_dbapi.Error as err:
        raise _wrapped(running[0], err, dialect, dialect.is_disconnect(err, None, None)) from err


def _discarded(engine: Engine, fairy, err: BaseException, running: list) -> BaseException:
    """``fairy`` failed with ``err``: it is invalidated (a lost connection invalidates the whole pool,
    as SQLAlchemy's Connection does on a disconnect: every older pooled connection is replaced at its
    next checkout). Returns what to raise: a driver error as SQLAlchemy's, anything else as it was."""
    dialect = engine.dialect
    if not isinstance(err, dialect.loaded_dbapi.Error):
        fairy.invalidate(err)
        return err
    lost = dialect.is_disconnect(err, fairy.dbapi_connection, None)
    if lost:
        engine.pool._invalidate(fairy, err)
    else:
        fairy.invalidate(err)
    return _wrapped(running[0], err, dialect, lost)


class _Held:
    """A thread's held connection: its pool checkout (``fairy``), the pool it came from, and when it
    was last used. When the thread ends (Granian stops a blocking thread idle for a while), the
    connection is closed, never handed back to the pool in autocommit."""

    __slots__ = ("fairy", "pool", "used")

    def __init__(self):
        self.fairy, self.pool, self.used = None, None, 0.0

    def __del__(self):
        fairy, self.fairy = self.fairy, None
        if fairy is not None:
            try:
                fairy.invalidate()
            except Exception:  # noqa: BLE001 - at interpreter exit the pool may be gone already
                pass


_threads = threading.local()


def _mine() -> _Held:
    held = getattr(_threads, "held", None)
    if held is None:
        held = _threads.held = _Held()
    return held


def _on_held(engine: Engine, work, idle_seconds: float):
    """``_on_driver`` on this thread's held connection (see the module docstring)."""
    running: list = [(None, None)]
    held = _mine()
    if held.fairy is not None and (held.pool is not engine.pool or monotonic() - held.used > idle_seconds
                                   and not _alive(engine, held.fairy)):
        release_held()  # another engine's, a disposed pool's, or cut while it sat unused
    if held.fairy is None:
        fairy = _checkout(engine, running)
        try:
            fairy.driver_connection.autocommit = True
        except BaseException as err:
            fairy.invalidate(err)
            raise
        held.fairy, held.pool = fairy, engine.pool
    fairy = held.fairy
    try:
        result = work(fairy.driver_connection, running)
    except BaseException as err:
        held.fairy = None
        failure = _discarded(engine, fairy, err, running)
        if failure is err:
            raise
        raise failure from err
    held.used = monotonic()
    return result


def _alive(engine: Engine, fairy) -> bool:
    try:
        return engine.dialect.do_ping(fairy.dbapi_connection) is not False
    except Exception:  # noqa: BLE001 - the driver's own error for a dead connection
        return False


def release_held() -> None:
    """Close this thread's held connection, if it has one (a test's end, a thread's)."""
    _held = _mine()
    fairy, _held.fairy, _held.pool = _held.fairy, None, None
    if fairy is not None:
        fairy.invalidate()  # closed, not returned: the pool expects its connections out of autocommit


def autocommit_never_pooled(engine: Engine) -> None:
    """A connection checked in while in autocommit is switched back first: the pool's other users
    (the ORM's transactions) must never get one that commits each statement by itself. The direct
    paths already switch back or invalidate; this is the rule's last line."""

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record):
        if dbapi_connection is not None and getattr(dbapi_connection, "autocommit", False) is True:
            dbapi_connection.autocommit = False


def hold_when_serving(app) -> None:
    """A server process's threads hold their connection unless ``IDP_DB_HOLD_CONNECTION`` says otherwise
    (``idp serve``, ``idp.wsgi``: threads that live as long as the process)."""
    import os

    if os.environ.get("IDP_DB_HOLD_CONNECTION", "") == "":
        app.config["DB_HOLD_CONNECTION"] = 1


def holding() -> bool:
    """Whether this app's server threads hold their connection (``DB_HOLD_CONNECTION``, ``idp serve``)."""
    from flask import current_app

    return bool(current_app.config.get("DB_HOLD_CONNECTION"))


def _wrapped(running: tuple, err: Exception, dialect, lost: bool) -> Exception:
    plan, args = running
    return exc.DBAPIError.instance(plan.sql if plan else None, args, err, dialect.loaded_dbapi.Error,
                                   hide_parameters=True, connection_invalidated=lost, dialect=dialect)


class DirectRead:
    """A SELECT (its selected column names unique: label them) run by ``first(engine, params)``."""

    def __init__(self, stmt: Select):
        names = [col.key for col in stmt.selected_columns]  # as SQLAlchemy's rows name them
        if len(set(names)) != len(names) or any(n.startswith("_") for n in names):
            raise ValueError(f"DirectRead needs unique, plain column names (label them): {names}")
        self.stmt = stmt
        self.row_type = namedtuple("Row", names)
        self._plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _plan(self, dialect) -> _Plan:
        plan = self._plans.get(dialect)
        if plan is None:
            plan = self._plans[dialect] = _Plan(self.stmt, dialect)
        return plan

    def first(self, engine: Engine, params: dict, *, held: bool = False):
        """The first row (a named tuple), or None; on this thread's held connection with ``held``."""
        plan = self._plan(engine.dialect)
        args = plan.arguments(params)
        hold = held and plan.autocommit

        def work(conn, running):
            running[0] = (plan, args)
            return _alone(conn, plan, args, lambda cursor: cursor.fetchone(), switch=not hold)

        raw = _on_held(engine, work, _idle_seconds()) if hold else _on_driver(engine, work)
        if raw is None:
            return None
        return self.row_type._make([v if p is None or v is None else p(v) for p, v in zip(plan.processors, raw)])


class DirectWrite:
    """An INSERT or UPDATE for ``write_together``; ``stmt`` may be a function of the dialect's name
    (an ``ON CONFLICT`` clause is spelled per dialect). Compiled once per dialect and parameter names."""

    def __init__(self, stmt):
        self._build = stmt if callable(stmt) else (lambda _dialect: stmt)
        self._plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # dialect -> {names: plan}

    def statement(self, dialect):
        return self._build(dialect.name)

    def plan(self, dialect, params: dict) -> _Plan:
        plans = self._plans.setdefault(dialect, {})
        plan = plans.get(names := tuple(params))
        if plan is None:
            plan = plans[names] = _Plan(self.statement(dialect), dialect, column_keys=list(names))
        return plan


class NothingWritten(Exception):
    """A guarded step of ``write_together`` changed no row: none of the group was written."""


def write_together(*steps: tuple[DirectWrite, dict, bool]) -> None:
    """Run ``(write, params, guarded)`` steps in order, in one transaction, then commit; a guarded
    step (put it first) must change exactly one row, else the group is rolled back and
    ``NothingWritten`` raised.

    On the pooled driver connection: a code and its session's client list, or a code's consumption
    with its tokens, at a fraction of the ORM session's CPU, and on PostgreSQL in psycopg's pipeline
    mode: one round trip for the group, two with a guarded step (four or five one at a time).
    Through the session instead if this request's session is in use (``session_in_use``): the steps
    then join its transaction and its owner commits (or rolls back after a raise), so a request never
    writes on two connections at once (SQLite would wait on itself)."""
    from .db import db

    if session_in_use():
        scoped = db.session
        dialect = scoped().get_bind().dialect
        for write, params, guarded in steps:
            if scoped.execute(write.statement(dialect), params).rowcount != 1 and guarded:
                raise NothingWritten
        return
    engine = db.engine
    plans = [(write.plan(engine.dialect, params), params, guarded) for write, params, guarded in steps]

    def work(conn, running):
        if pipelined:
            return _pipelined(conn, running, plans)
        cursor = conn.cursor()
        try:
            for plan, params, guarded in plans:
                args = plan.arguments(params)
                running[0] = (plan, args)
                cursor.execute(plan.sql, args, **plan.execute_kw)
                if guarded and cursor.rowcount != 1:
                    conn.rollback()
                    raise NothingWritten
        finally:
            cursor.close()
        conn.commit()

    pipelined = plans[0][0].autocommit  # psycopg: its pipeline mode
    _on_driver(engine, work)


def write_one(write: DirectWrite, params: dict) -> int:
    """One statement, committed by itself (atomic: PostgreSQL's data-modifying ``WITH`` puts several
    changes in one); returns its row count. On the pooled driver connection in autocommit — one round
    trip, no BEGIN, sync or COMMIT around it — or, if this request's session is in use
    (``session_in_use``), in its transaction, committed by its owner."""
    from .db import db

    if session_in_use():
        scoped = db.session
        # SQLAlchemy keeps an INSERT's row count only when asked (``preserve_rowcount``); else -1.
        stmt = write.statement(scoped().get_bind().dialect).execution_options(preserve_rowcount=True)
        return scoped.execute(stmt, params).rowcount
    engine = db.engine
    plan = write.plan(engine.dialect, params)
    args = plan.arguments(params)
    hold = plan.autocommit and holding()

    def work(conn, running):
        running[0] = (plan, args)
        count = _alone(conn, plan, args, lambda cursor: cursor.rowcount, switch=not hold)
        if not plan.autocommit:
            conn.commit()
        return count

    return _on_held(engine, work, _idle_seconds()) if hold else _on_driver(engine, work)


def _alone(conn, plan: _Plan, args, result, *, switch: bool = True):
    """Run one statement by itself and return ``result(cursor)``: on psycopg in autocommit (no BEGIN or
    COMMIT around it), the connection put back as the pool expects it (``switch``; a held connection
    stays in autocommit)."""
    switch = switch and plan.autocommit
    if switch:
        conn.autocommit = True
    cursor = conn.cursor()
    try:
        cursor.execute(plan.sql, args, **plan.execute_kw)
        return result(cursor)
    finally:
        cursor.close()
        if switch and not conn.closed:
            conn.autocommit = False


def _pipelined(conn, running, plans) -> None:
    """``write_together``'s group in psycopg's pipeline mode: BEGIN, the statements and COMMIT go to
    PostgreSQL together, one round trip instead of one each; with a guarded step, the COMMIT (or the
    ROLLBACK) goes once its row count is known, a second round trip."""
    guarded = any(g for _, _, g in plans)
    cursors = []
    try:
        with conn.pipeline() as pipeline:
            for plan, params, _ in plans:
                args = plan.arguments(params)
                running[0] = (plan, args)
                cursor = conn.cursor()
                cursors.append(cursor)
                cursor.execute(plan.sql, args, **plan.execute_kw)
            if guarded:
                pipeline.sync()
                if any(g and c.rowcount != 1 for (_, _, g), c in zip(plans, cursors)):
                    conn.rollback()
                    raise NothingWritten
            conn.commit()
    finally:
        for cursor in cursors:
            cursor.close()


def read_first(read: DirectRead, params: dict):
    """``read.first`` on the app's engine; through the session instead if this request's session is in
    use (``session_in_use``: it then sees the request's own writes, and one connection is enough)."""
    from .db import db

    if session_in_use():
        return db.session.execute(read.stmt, params).first()
    return read.first(db.engine, params, held=holding())


_CONNECTED = "idp.connected"


@event.listens_for(Session, "after_begin")
def _began(session, transaction, connection):
    session.info[_CONNECTED] = True


@event.listens_for(Session, "after_transaction_end")
def _ended(session, transaction):
    if transaction.parent is None:
        session.info.pop(_CONNECTED, None)


def session_in_use() -> bool:
    """Whether this request's ORM session holds a database connection in a transaction, or has
    changes not yet flushed: what it wrote or read there is seen only through it, so the direct paths
    go through it instead. (A session that only began, e.g. by attaching a loaded object, holds
    neither.) Only a session this app context already made can (making one costs more than the read)."""
    from .db import db

    scoped = db.session
    if not scoped.registry.has():
        return False
    orm = scoped()
    return orm.info.get(_CONNECTED, False) or bool(orm.new or orm.deleted or orm.dirty)


def _idle_seconds() -> float:
    from flask import current_app

    return float(current_app.config["DB_PING_AFTER_IDLE"])
