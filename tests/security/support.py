"""Shared checks for the security tests: what a refusal must look like, and "nothing stored changed".

The RFC error vocabularies are spelled out here once, each with its section, so every test checks
a response against the list its endpoint may use.
"""
from __future__ import annotations

import hashlib
import json
from urllib.parse import parse_qs

from flask.testing import FlaskClient
from sqlalchemy import inspect, text

from tests.conftest import cheap_password_hashing  # noqa: F401 - used below, and by tests importing it here

ISSUER = "http://127.0.0.1:5000"

# RFC 6749 §5.2 (token endpoint error response).
TOKEN_ERRORS = frozenset({"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                          "unsupported_grant_type", "invalid_scope"})
# RFC 7009 §2.2.1 adds unsupported_token_type to the §5.2 list for revocation.
REVOCATION_ERRORS = TOKEN_ERRORS | {"unsupported_token_type"}
# RFC 7662 §2.3: introspection errors are the RFC 6749 §5.2 / RFC 6750 §3.1 ones.
INTROSPECTION_ERRORS = TOKEN_ERRORS | {"invalid_token", "insufficient_scope"}
# RFC 6750 §3.1 (bearer token errors, UserInfo: OIDC Core §5.3.3).
BEARER_ERRORS = frozenset({"invalid_request", "invalid_token", "insufficient_scope"})
# RFC 6749 §4.1.2.1 plus OIDC Core §3.1.2.6. server_error and temporarily_unavailable are in the
# RFC's list but are never the right answer to a malformed request, so they are left out on purpose.
AUTHORIZE_ERRORS = frozenset({
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type", "invalid_scope",
    "interaction_required", "login_required", "account_selection_required", "consent_required",
    "invalid_request_uri", "invalid_request_object", "request_not_supported", "request_uri_not_supported",
    "registration_not_supported",
})

# Columns that change on a read by design: the SSO session slides its idle expiry (at most once a
# minute, idp/sessions/service.py find_session). Everything else must stay byte-for-byte equal.
SLIDING_COLUMNS = {"sso_session": {"last_seen_at", "idle_expires_at"}}
SKIPPED_TABLES = {"audit_event", "login_throttle"}  # failed logins are audited and counted, on purpose


def snapshot(db, *, skip_columns: dict[str, set[str]] | None = None) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every row of every table (but audit_event), read over a separate
    connection so only what is committed counts."""
    skip = {t: set(c) for t, c in SLIDING_COLUMNS.items()}
    for table, cols in (skip_columns or {}).items():
        skip.setdefault(table, set()).update(cols)
    out = {}
    with db.engine.connect() as conn:
        for table, columns in _schema(db, conn):
            if table in SKIPPED_TABLES:
                continue
            quoted = ", ".join(f'"{c}"' for c in columns if c not in skip.get(table, set()))
            rows = conn.execute(text(f'SELECT {quoted} FROM "{table}" ORDER BY 1')).all()
            out[table] = (len(rows), hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest())
    return out


_SCHEMAS: dict[str, list] = {}


def _schema(db, conn) -> list[tuple[str, list[str]]]:
    """Every table in the database (not just the models) and its columns; read once per database."""
    key = str(db.engine.url)
    if key not in _SCHEMAS:
        insp = inspect(conn)
        _SCHEMAS[key] = [(t, [c["name"] for c in insp.get_columns(t)]) for t in sorted(insp.get_table_names())]
    return _SCHEMAS[key]


def diff(before: dict, after: dict) -> list[str]:
    return sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))


class Unchanged:
    """``with Unchanged(db): ...`` asserts that nothing stored changed inside the block."""

    def __init__(self, db, **kw):
        self.db, self.kw = db, kw

    def __enter__(self):
        self.before = snapshot(self.db, **self.kw)
        return self

    def __exit__(self, exc_type, exc, tb):
        # Each real request gets a fresh database session (Flask tears it down); tests share one
        # application context, so drop whatever a refused request may have left unflushed.
        self.db.session.rollback()
        if exc_type is None:
            changed = diff(self.before, snapshot(self.db, **self.kw))
            assert not changed, f"a refused request changed stored data in: {changed}"
        return False


def body_text(resp) -> str:
    return resp.get_data(as_text=True)


def assert_no_crash(resp, what: str = "") -> None:
    """Never a 5xx, never a stack trace (the requirement: 'never a 500, never a stack trace')."""
    body = body_text(resp)
    assert resp.status_code < 500, f"{what}: HTTP {resp.status_code}: {body[:400]}"
    assert "Traceback" not in body and 'File "/' not in body, f"{what}: stack trace in body"


def json_body(resp, what: str = "") -> dict:
    assert resp.mimetype == "application/json", f"{what}: expected JSON, got {resp.mimetype} ({resp.status_code}): {body_text(resp)[:200]}"
    body = json.loads(resp.get_data())
    assert isinstance(body, dict), f"{what}: JSON body is not an object"
    return body


def assert_oauth_error(resp, allowed: frozenset[str], what: str = "", *, status: int | tuple | None = None) -> str:
    """A JSON error response (RFC 6749 §5.2) with an ``error`` from ``allowed``; returns the code."""
    assert_no_crash(resp, what)
    body = json_body(resp, what)
    assert body.get("error") in allowed, f"{what}: error {body.get('error')!r} not in {sorted(allowed)} ({resp.status_code})"
    statuses = (status,) if isinstance(status, int) else status
    if not statuses:
        if body["error"] == "invalid_client":
            statuses = (400, 401)  # RFC 6749 §5.2: 401 when the client used the Authorization header
        elif body["error"] in REVOCATION_ERRORS:
            statuses = (400,)  # RFC 6749 §5.2: "HTTP 400 (Bad Request) ... (unless specified otherwise)"
        else:
            statuses = (400, 401, 403)  # RFC 6750 §3.1
    assert resp.status_code in statuses, f"{what}: HTTP {resp.status_code} for {body['error']}, expected {statuses}: {body}"
    # RFC 6749 §5.2: error_description is ASCII without '"' and '\'.
    desc = body.get("error_description")
    if desc is not None:
        assert isinstance(desc, str) and all(0x20 <= ord(ch) <= 0x7E and ch not in '"\\' for ch in desc), \
            f"{what}: error_description has characters RFC 6749 §5.2 forbids: {desc!r}"
    if body["error"] == "invalid_client" and resp.status_code == 401:
        # RFC 6749 §5.2: a 401 for invalid_client MUST carry WWW-Authenticate.
        assert resp.headers.get("WWW-Authenticate"), f"{what}: 401 invalid_client without WWW-Authenticate"
    return body["error"]


def assert_error_page(resp, what: str = "", *, status: int | tuple = 400) -> None:
    """A readable HTML error page, never a redirect (RFC 6749 §4.1.2.1 for bad client/redirect_uri)."""
    assert_no_crash(resp, what)
    statuses = (status,) if isinstance(status, int) else status
    assert resp.status_code in statuses, f"{what}: HTTP {resp.status_code}, expected {statuses}: {body_text(resp)[:300]}"
    assert "Location" not in resp.headers, f"{what}: error page must not redirect (Location: {resp.headers.get('Location')})"
    assert resp.mimetype == "text/html", f"{what}: expected an HTML page, got {resp.mimetype}"
    assert "<h1>" in body_text(resp), f"{what}: not a readable page"


def assert_error_redirect(resp, redirect_uri: str, allowed: frozenset[str], what: str = "", *,
                          state: str | None = None, issuer: str = ISSUER) -> dict:
    """An error sent back to the registered redirect_uri with state and iss (RFC 6749 §4.1.2.1,
    OIDC Core §3.1.2.6, RFC 9207 §2). Returns the parsed query."""
    assert_no_crash(resp, what)
    assert resp.status_code in (302, 303), f"{what}: HTTP {resp.status_code}, expected an error redirect: {body_text(resp)[:300]}"
    loc = resp.headers["Location"]
    target, _, query = loc.partition("?")
    assert target == redirect_uri.partition("?")[0], f"{what}: redirected to {loc!r}, not the registered {redirect_uri!r}"
    q = parse_qs(query, keep_blank_values=True)
    assert "code" not in q, f"{what}: a code was issued: {loc}"
    assert q.get("error", [None])[0] in allowed, f"{what}: error {q.get('error')} not in {sorted(allowed)}"
    assert q.get("iss") == [issuer], f"{what}: iss {q.get('iss')} != {issuer}"
    if state is not None:
        assert q.get("state") == [state], f"{what}: state {q.get('state')} != {state!r}"
    desc = q.get("error_description", [""])[0]
    assert all(0x20 <= ord(ch) <= 0x7E and ch not in '"\\' for ch in desc), \
        f"{what}: error_description outside RFC 6749 §4.1.2.1's character set: {desc!r}"
    return q


class IsolatedClient(FlaskClient):
    """Each request runs in its own application context, as in production: a fresh ``g`` (Flask-WTF
    caches the CSRF token there) and a fresh database session, torn down after the request."""

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


def module_app(tmp_path_factory, template_dir, **settings):
    """An application on its own copy of the template database and keys, for one test module (the
    conftest ``app`` fixture builds one per test, which would dominate the run time here). A
    generator: use it as the body of a module-scoped fixture."""
    import shutil

    from idp import create_app
    from tests.conftest import _config

    tmp = tmp_path_factory.mktemp("security")
    shutil.copytree(template_dir / "keys", tmp / "keys")
    shutil.copy(template_dir / "idp.sqlite3", tmp / "idp.sqlite3")
    app = create_app(_config(tmp, **settings))
    app.test_client_class = IsolatedClient
    with cheap_password_hashing(), app.app_context():
        yield app


def create_alice():
    from idp.accounts.service import create_citizen
    from tests.conftest import PASSWORD

    return create_citizen(username="alice", password=PASSWORD, name="张三", phone="13800138000",
                          email="alice@example.cn", id_number="11010519491231002X")
