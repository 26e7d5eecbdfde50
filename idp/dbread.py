"""One-statement reads on the pooled driver connection, for the lookups on every bearer request.

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

Only for a single SELECT that needs no transaction. ``read_first`` goes through the session instead
when the session already has a transaction open in this request, so a request reads its own writes.
"""
from __future__ import annotations

import weakref
from collections import namedtuple

from sqlalchemy import exc
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Select


class _Plan:
    """The statement compiled for one dialect, and how to run it there."""

    __slots__ = ("_compiled", "autocommit", "binds", "execute_kw", "positional", "processors", "sql")

    def __init__(self, stmt: Select, dialect):
        compiled = stmt.compile(dialect=dialect)
        self.sql = compiled.string
        self.positional = tuple(compiled.positiontup) if compiled.positional else None
        self.binds = {name: proc for name, bind in compiled.binds.items()
                      if (proc := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None}
        self.processors = tuple(col.type.dialect_impl(dialect).result_processor(dialect, None)
                                for col in stmt.selected_columns)
        psycopg = dialect.name == "postgresql" and dialect.driver == "psycopg"
        self.autocommit = psycopg
        self.execute_kw = {"prepare": True} if psycopg else {}
        self._compiled = compiled

    def arguments(self, params: dict):
        values = self._compiled.construct_params(params)
        for name, proc in self.binds.items():
            values[name] = proc(values[name])
        return tuple(values[name] for name in self.positional) if self.positional is not None else values


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

    def first(self, engine: Engine, params: dict):
        """The first row (a named tuple), or None."""
        dialect = engine.dialect
        plan = self._plan(dialect)
        args = plan.arguments(params)
        dbapi_error = dialect.loaded_dbapi.Error
        try:
            fairy = engine.raw_connection()  # the pool's checkout events run (``db.ping_when_idle``)
        except dbapi_error as err:
            raise self._wrapped(plan, None, err, dialect, dialect.is_disconnect(err, None, None)) from err
        cursor = None
        try:
            conn = fairy.driver_connection
            if plan.autocommit:
                conn.autocommit = True
            try:
                cursor = conn.cursor()
                cursor.execute(plan.sql, args, **plan.execute_kw)
                raw = cursor.fetchone()
            finally:
                if plan.autocommit and not conn.closed:
                    conn.autocommit = False
        except dbapi_error as err:
            lost = dialect.is_disconnect(err, fairy.dbapi_connection, cursor)
            if lost:
                # What SQLAlchemy's Connection does on a disconnect: this connection is discarded and
                # every older pooled one is replaced at its next checkout.
                engine.pool._invalidate(fairy, err)
            else:
                # Any other error: this connection is discarded too, never returned to the pool in a
                # state we are not sure of (autocommit left on would run the ORM without transactions).
                fairy.invalidate(err)
            raise self._wrapped(plan, args, err, dialect, lost) from err
        finally:
            if cursor is not None:
                cursor.close()
            fairy.close()
        if raw is None:
            return None
        return self.row_type._make([v if p is None or v is None else p(v) for p, v in zip(plan.processors, raw)])

    @staticmethod
    def _wrapped(plan: _Plan, args, err: Exception, dialect, lost: bool) -> Exception:
        return exc.DBAPIError.instance(plan.sql, args, err, dialect.loaded_dbapi.Error, hide_parameters=True,
                                       connection_invalidated=lost, dialect=dialect)


def read_first(read: DirectRead, params: dict):
    """``read.first`` on the app's engine; through the session instead if this request's session
    already has a transaction (it then sees the request's own writes, and one connection is enough)."""
    from .db import db

    scoped = db.session
    # Only a session this app context already made can have a transaction (making one costs more than the read).
    if scoped.registry.has() and scoped().in_transaction():
        return scoped.execute(read.stmt, params).first()
    return read.first(db.engine, params)
