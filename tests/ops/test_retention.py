"""``idp prune`` (``idp.ops.retention``): what has expired and can no longer matter is deleted, in
batches; what still matters is kept, including the rows the protocol's safety checks read after
expiry (a replayed code, a rotated refresh token presented again, a refresh token's session)."""
from __future__ import annotations

import json
import secrets
import shutil
from datetime import timedelta

import pytest

from sqlalchemy import func, select, update

from idp.audit.models import AuditEvent
from idp.authn.models import LoginThrottle, VerificationCode
from idp.db import db, utcnow
from idp.oauth.models import AuthorizationCode, PushedRequest, Token
from idp.sessions.models import LogoutDelivery, SsoSession
from tests.conftest import basic, exchange

DAY = timedelta(days=1)


def _token(person_id: int, session_id: int | None, family: str, access_expires, refresh_expires=None,
           rotated=None) -> Token:
    t = Token(client_id="c1", person_id=person_id, session_id=session_id, family=family, grant_type="authorization_code",
              scope="openid", access_digest=secrets.token_hex(32), jti=secrets.token_hex(8),
              access_expires_at=access_expires, refresh_digest=secrets.token_hex(32) if refresh_expires else None,
              refresh_expires_at=refresh_expires, rotated_at=rotated, amr=["pwd"], issued_at=utcnow())
    db.session.add(t)
    return t


def _session(person_id: int, ended_at) -> SsoSession:
    now = utcnow()
    s = SsoSession(sid=secrets.token_urlsafe(12), cookie_digest=secrets.token_hex(32), person_id=person_id,
                   auth_time=now - 3 * DAY, acr="urn:idp:loa:1", amr=["pwd"], created_at=now - 3 * DAY,
                   last_seen_at=now - 3 * DAY, idle_expires_at=now - 2 * DAY, absolute_expires_at=now + DAY,
                   ended_at=ended_at, end_reason="expired" if ended_at else None)
    db.session.add(s)
    db.session.flush()
    return s


def _code(person_id: int, expires_at) -> AuthorizationCode:
    c = AuthorizationCode(code_digest=secrets.token_hex(32), client_id="c1", person_id=person_id,
                          redirect_uri="https://rp.example/cb", scope="openid", auth_time=expires_at, acr="urn:idp:loa:1",
                          amr=["pwd"], created_at=expires_at - timedelta(minutes=2), expires_at=expires_at)
    db.session.add(c)
    return c


def _delivery(status: str, delivered_at) -> LogoutDelivery:
    d = LogoutDelivery(client_id="c1", uri="https://rp.example/logout", sid="s", sub="u", jti=secrets.token_hex(8),
                       status=status, delivered_at=delivered_at, created_at=utcnow() - 3 * DAY)
    db.session.add(d)
    return d


def _verification(expires_at) -> VerificationCode:
    v = VerificationCode(purpose="register", channel="phone", destination_index=secrets.token_hex(32),
                         destination_enc="x", code_digest=secrets.token_hex(32), expires_at=expires_at)
    db.session.add(v)
    return v


def _pushed(expires_at, used: bool = False) -> PushedRequest:
    r = PushedRequest(uri_digest=secrets.token_hex(32), client_id="c1", params={"scope": "openid"},
                      expires_at=expires_at, used_at=expires_at if used else None)
    db.session.add(r)
    return r


def _ids(model) -> set:
    db.session.expire_all()
    key = LoginThrottle.key if model is LoginThrottle else model.id
    return set(db.session.execute(select(key)).scalars())


def test_prune_deletes_the_dead_and_keeps_what_still_matters(app, user):
    _prune_and_check(user)


@pytest.mark.postgres
def test_prune_on_postgresql(tmp_path, postgres_url, template_dir):
    from idp import create_app
    from idp.accounts.service import create_citizen
    from idp.migrations_lock import upgrade_database
    from tests.conftest import _config

    shutil.copytree(template_dir / "keys", tmp_path / "keys")
    app = create_app(_config(tmp_path, db_url=postgres_url))
    with app.app_context():
        upgrade_database()
        _prune_and_check(create_citizen(username="alice", password="correct horse battery"))
        db.session.remove()
        db.engine.dispose()


def _prune_and_check(user):
    from idp.ops.retention import prune

    now = utcnow()
    old, recent = now - 2 * DAY, now - timedelta(hours=1)
    codes_before, tokens_before = _ids(AuthorizationCode), _ids(Token)
    dead_code, fresh_code = _code(user.id, old), _code(user.id, recent)  # expired 2 days / 1 hour ago
    ended = _session(user.id, ended_at=old)            # ended, no token names it: goes
    named = _session(user.id, ended_at=old)            # ended, but a live refresh token names it: stays
    live = _session(user.id, ended_at=None)
    [_token(user.id, ended.id, "f-dead", old, old, rotated=old), _token(user.id, ended.id, "f-dead", old, old)]
    # A rotated member long expired, but its family lives: kept, so presenting it again still revokes.
    live_family = [_token(user.id, named.id, "f-live", old, old, rotated=old), _token(user.id, named.id, "f-live", old, now + DAY)]
    _delivery("delivered", old)                        # delivered long ago: goes
    failed, pending = _delivery("failed", None), _delivery("pending", None)
    _verification(old)
    fresh_verification = _verification(now + timedelta(minutes=5))
    _pushed(old, used=True)                            # a pushed request past its expiry: goes
    waiting = _pushed(now + timedelta(seconds=60))     # one still waiting for its browser: stays
    db.session.add_all([LoginThrottle(key="idle", failures=3, window_start=old),
                        LoginThrottle(key="locked", failures=9, window_start=old, locked_until=now + timedelta(minutes=5)),
                        LoginThrottle(key="counting", failures=1, window_start=now)])
    db.session.commit()
    events = db.session.execute(select(func.count()).select_from(AuditEvent)).scalar()
    dead_code_id, fresh_code_id, ended_id, named_id, live_id = dead_code.id, fresh_code.id, ended.id, named.id, live.id
    live_family_ids = {t.id for t in live_family}
    failed_id, pending_id, fresh_verification_id = failed.id, pending.id, fresh_verification.id
    waiting_id = waiting.id

    expected = {"authorization_codes": 1, "tokens": 2, "sso_sessions": 1, "pushed_requests": 1, "logout_deliveries": 1,
                "verification_codes": 1, "used_assertions": 0, "login_throttle": 1}
    assert prune(DAY, dry_run=True) == expected
    assert dead_code_id in _ids(AuthorizationCode) and ended_id in _ids(SsoSession)  # a dry run deletes nothing

    seen = []
    assert prune(DAY, batch=1, progress=lambda name, n: seen.append((name, n))) == expected
    assert ("tokens", 1) in seen and ("tokens", 2) in seen  # one row per batch, progress after each

    assert _ids(AuthorizationCode) == codes_before | {fresh_code_id}
    assert _ids(Token) == tokens_before | live_family_ids
    assert {named_id, live_id} <= _ids(SsoSession) and ended_id not in _ids(SsoSession)
    assert _ids(LogoutDelivery) == {failed_id, pending_id}
    assert _ids(VerificationCode) == {fresh_verification_id}
    assert _ids(PushedRequest) == {waiting_id}
    assert _ids(LoginThrottle) == {"locked", "counting"}
    event = db.session.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).scalar_one()
    assert event.action == "data.pruned" and event.detail["tokens"] == 2 and event.detail["keep_hours"] == 24
    assert db.session.execute(select(func.count()).select_from(AuditEvent)).scalar() == events + 1
    assert prune(DAY)["tokens"] == 0  # nothing left to do


def test_after_a_prune_an_ended_sessions_refresh_token_is_still_refused(app, client, rp, tokens, browser):
    """A refresh token (not offline) works only while its session lasts: the session's row is kept as
    long as a token names it, so pruning never turns "ended" into "no session"."""
    from idp.ops.retention import prune

    s = db.session.execute(select(SsoSession)).scalars().one()
    db.session.execute(update(SsoSession).values(ended_at=utcnow() - 2 * DAY, end_reason="logout"))
    db.session.commit()
    assert prune(DAY)["sso_sessions"] == 0
    assert s.id in _ids(SsoSession)
    resp = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                       headers=basic(rp))
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"


def test_a_replayed_code_is_still_recognised_within_the_keep_period(app, client, rp, browser, user):
    """RFC 6749 §4.1.2: a code used twice revokes what it issued; pruning keeps used codes for the
    keep period after their expiry, so a replay soon after is still caught."""
    from idp.ops.retention import prune

    code, verifier, _ = browser.code(rp)
    first = exchange(client, rp, code, verifier).get_json()
    db.session.execute(update(AuthorizationCode).values(expires_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    assert prune(DAY)["authorization_codes"] == 0
    assert exchange(client, rp, code, verifier).get_json()["error"] == "invalid_grant"
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"}).status_code == 401


def test_the_prune_command(app, runner, user):
    _code(user.id, utcnow() - 2 * DAY)
    db.session.commit()
    dry = runner.invoke(args=["prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout.strip().splitlines()[-1])["would_delete"]["authorization_codes"] == 1
    done = runner.invoke(args=["prune", "--keep-hours", "12"])
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["deleted"]["authorization_codes"] == 1 and out["keep_hours"] == 12
    assert "authorization_codes: 1 deleted" in done.stderr
    bad = runner.invoke(args=["prune", "--batch", "0"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_the_prune_command_says_what_was_done_when_the_database_goes_away(app, runner, monkeypatch):
    """A non-zero exit and one line that says how many rows were deleted before the outage (they stay
    deleted: each batch is its own transaction), never a trace."""
    from sqlalchemy.exc import OperationalError

    from idp.ops import retention

    def outage(keep, *, progress, **kw):
        progress("tokens", 1000)
        progress("tokens", 1500)
        raise OperationalError("DELETE", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(retention, "prune", outage)
    result = runner.invoke(args=["prune"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "database is unavailable" in result.output and "after 1500 rows were deleted" in result.output


def _pruned_events() -> list[AuditEvent]:
    db.session.expire_all()
    return AuditEvent.query.filter_by(action="data.pruned").order_by(AuditEvent.id).all()


def test_the_servers_prune_once_per_interval(app, user):
    """``IDP_PRUNE_INTERVAL``: a prune runs when the last ``data.pruned`` event (an automatic prune or
    ``idp prune``) is older than the interval, whichever process asks; ``IDP_PRUNE_KEEP_HOURS`` is kept."""
    from idp.ops.retention import prune_if_due

    _code(user.id, utcnow() - 2 * DAY)
    recent = _code(user.id, utcnow() - timedelta(hours=1))
    db.session.commit()
    recent_id = recent.id
    assert prune_if_due()["authorization_codes"] == 1
    assert [e.actor for e in _pruned_events()] == ["system"] and recent_id in _ids(AuthorizationCode)
    assert prune_if_due() is None  # within the interval: another process (or node) asking does nothing
    _pruned_events()[-1].at = utcnow() - timedelta(seconds=3601)
    db.session.commit()
    app.config["PRUNE_KEEP_HOURS"] = 0  # keep nothing that has expired
    assert prune_if_due()["authorization_codes"] == 1 and recent_id not in _ids(AuthorizationCode)
    app.config["PRUNE_INTERVAL"] = 0  # off: cron runs ``idp prune``
    _pruned_events()[-1].at = utcnow() - 2 * DAY
    db.session.commit()
    assert prune_if_due() is None


def test_the_prune_thread_of_a_server_process(app, user):
    """The first automatic prune comes one interval after the process starts, then one per interval."""
    import time as clock

    from idp.ops.retention import PruneWorker

    app.config["PRUNE_INTERVAL"] = 1
    worker = PruneWorker(app)
    worker.start()
    try:
        deadline = clock.monotonic() + 10
        while not _pruned_events() and clock.monotonic() < deadline:
            clock.sleep(0.1)
        assert len(_pruned_events()) == 1
    finally:
        worker.stop()
        worker.join(5)
    assert not worker.is_alive()


def test_a_negative_keep_period_is_refused_at_start(tmp_path):
    from idp.config import ConfigError, load

    with pytest.raises(ConfigError, match="IDP_PRUNE_KEEP_HOURS"):
        load({"PRUNE_KEEP_HOURS": -1, "SECRET_KEY": "x" * 40})


@pytest.mark.postgres
def test_one_automatic_prune_at_a_time_across_nodes(tmp_path, postgres_url, template_dir):
    """While one process holds the advisory lock (a prune in progress on some node), another's
    automatic prune does nothing, and runs once the lock is released."""
    from sqlalchemy import create_engine, text

    from idp import create_app
    from idp.migrations_lock import upgrade_database
    from idp.ops.retention import _LOCK_ID, prune_if_due
    from tests.conftest import _config

    shutil.copytree(template_dir / "keys", tmp_path / "keys")
    app = create_app(_config(tmp_path, db_url=postgres_url))
    other = create_engine(postgres_url)
    try:
        with app.app_context():
            upgrade_database()
            with other.connect() as node:
                assert node.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_ID}).scalar() is True
                assert prune_if_due() is None and _pruned_events() == []
                node.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_ID})
            assert prune_if_due() is not None and len(_pruned_events()) == 1
            # and the lock was released after the prune: the other node can take it
            with other.connect() as node:
                assert node.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_ID}).scalar() is True
            db.session.remove()
            db.engine.dispose()
    finally:
        other.dispose()


@pytest.mark.parametrize("logout_worker, interval", [(0, 3600), (1, 3600), (1, 0)])
def test_the_prune_thread_starts_on_its_own_setting(app, logout_worker, interval):
    """``idp serve`` starts the prune thread when ``IDP_PRUNE_INTERVAL`` > 0, whether or not the
    logout delivery worker runs (``IDP_LOGOUT_WORKER``), and each once."""
    from idp import start_logout_worker

    app.config.update(LOGOUT_WORKER=logout_worker, PRUNE_INTERVAL=interval)
    try:
        first = start_logout_worker(app)
        assert start_logout_worker(app) is first  # started once
        assert ("idp.prune_worker" in app.extensions) == (interval > 0)
        assert ("idp.logout_worker" in app.extensions) == bool(logout_worker)
        if interval:
            assert app.extensions["idp.prune_worker"].is_alive()
    finally:
        for key in ("idp.prune_worker", "idp.logout_worker"):
            if (thread := app.extensions.pop(key, None)) is not None:
                thread.stop()
                thread.join(5)
