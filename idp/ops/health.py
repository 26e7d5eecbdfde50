"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can do its work: the database
answers within a bounded time, the signing keys and the data key are loaded).

Both are unauthenticated, uncached and cheap, and say nothing about people: a load balancer or an
orchestrator polls them. A failed check names the kind of error only (never its text: a driver's
message may hold the database URL).
"""
from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from ..db import db

bp = Blueprint("health", __name__)
OK = "ok"
# Longest time a readiness probe may spend in the database (PostgreSQL statement_timeout, ms);
# connecting is bounded by the engine's connect_timeout (idp.create_app).
STATEMENT_TIMEOUT_MS = 2000


def _answer(body: dict, status: int):
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def check_database() -> str:
    """A read of the migrations' version row: the database answers and holds the schema."""
    try:
        with db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
            if conn.execute(text("SELECT version_num FROM alembic_version")).first() is None:
                return "not migrated"
    except Exception as exc:  # any failure means not ready; the probe itself never fails
        return f"error: {type(exc).__name__}"
    return OK


def check_signing_keys() -> str:
    store = current_app.extensions.get("idp.keystore")
    if store is None:
        return "not loaded"
    try:
        return OK if json.loads(store.jwks_json())["keys"] else "empty JWKS"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def check_data_key() -> str:
    protector = current_app.extensions.get("idp.protector")
    if protector is None:
        return "not loaded"
    try:
        protector.current_key_id  # re-reads the key file if it changed
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return OK


@bp.get("/healthz")
def healthz():
    return _answer({"status": "ok"}, 200)


@bp.get("/readyz")
def readyz():
    checks = {"database": check_database(), "signing_keys": check_signing_keys(), "data_key": check_data_key()}
    ready = all(v == OK for v in checks.values())
    return _answer({"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503)
