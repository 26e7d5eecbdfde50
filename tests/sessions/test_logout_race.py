"""A logout racing a subsite's code exchange, on a real PostgreSQL: whichever commits first, the
subsite ends up without live tokens of the ended session (Back-Channel Logout 1.0 §2.7: the subsite
was sent a logout token for it; RFC 6749 §5.2 ``invalid_grant`` for a code that is no longer valid).

The logout (``end_sessions``) is stopped just before it commits: the session is ended, its unused
codes expired and its tokens revoked, none of it visible yet. The exchange then runs: it reads the
session as live, signs the ID token, and its guarded write must wait for the logout's row lock on the
code and then find the code expired. Without that guard it would store a token the logout's
revocation had already missed."""
from __future__ import annotations

import shutil
import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import scoped_session

from idp.db import db
from tests.conftest import Browser, _config, basic, make_rp

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_app(tmp_path, postgres_url, template_dir):
    from idp import create_app
    from idp.accounts.service import create_citizen
    from idp.migrations_lock import upgrade_database
    from tests.conftest import PASSWORD

    shutil.copytree(template_dir / "keys", tmp_path / "keys")
    app = create_app(_config(tmp_path, db_url=postgres_url))
    with app.app_context():
        upgrade_database()
        create_citizen(username="alice", password=PASSWORD)
        yield app
        db.session.remove()
        db.engine.dispose()


def _race_with_logout(app, monkeypatch, session_id: int, request):
    """Stop ``end_sessions`` just before its commit, run ``request()`` meanwhile, let the logout
    commit; returns what ``request()`` returned (a response: its status and JSON body)."""
    from idp.sessions.logout import end_sessions
    from idp.sessions.models import SsoSession

    at_commit, go_on = threading.Event(), threading.Event()
    commit = scoped_session.commit

    def held_commit(self):
        if threading.current_thread().name == "logout":
            at_commit.set()
            go_on.wait(30)
        return commit(self)

    monkeypatch.setattr(scoped_session, "commit", held_commit)

    def logout():
        with app.app_context():
            end_sessions([db.session.get(SsoSession, session_id)], reason="logout", actor="test")
            db.session.remove()

    answers = []
    ending = threading.Thread(target=logout, name="logout")
    ending.start()
    assert at_commit.wait(30), "the logout did not reach its commit"
    racing = threading.Thread(target=lambda: answers.append(request()), name="racing")
    racing.start()
    racing.join(2)  # it waits for the logout's row lock (an unguarded write would be done by now)
    go_on.set()
    ending.join(30)
    racing.join(30)
    assert not ending.is_alive() and not racing.is_alive()
    resp, = answers
    return (resp.status_code, resp.get_json()) if hasattr(resp, "status_code") else resp


def _live_tokens(app, session_id: int) -> int:
    from idp.oauth.models import Token

    with app.app_context():
        return db.session.execute(select(func.count()).select_from(Token).where(
            Token.session_id == session_id, Token.revoked_at.is_(None))).scalar()


@pytest.mark.parametrize("auth", ["basic", "post"], ids=["lean", "general"])
def test_a_code_exchange_racing_a_logout_leaves_no_live_token(pg_app, monkeypatch, auth):
    from idp.sessions.models import SsoSession

    rp = make_rp(pg_app, first_party=True, auth_method=f"client_secret_{auth}")
    code, verifier, _ = Browser(pg_app.test_client()).code(rp)
    session_id = db.session.execute(select(SsoSession.id)).scalar_one()
    db.session.remove()
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": rp["redirect_uri"],
            "code_verifier": verifier}

    def redeem():
        if auth == "post":
            return pg_app.test_client().post("/token", data={**data, "client_id": rp["client_id"],
                                                             "client_secret": rp["client_secret"]})
        return pg_app.test_client().post("/token", data=data, headers=basic(rp))

    status, body = _race_with_logout(pg_app, monkeypatch, session_id, redeem)
    assert status == 400 and body["error"] == "invalid_grant", body
    assert _live_tokens(pg_app, session_id) == 0


def test_a_refresh_racing_a_logout_leaves_no_live_token(pg_app, monkeypatch):
    """RFC 6749 §6 and Back-Channel Logout §2.7 ("refresh tokens issued without the offline_access
    property to a session being logged out SHOULD be revoked"): the rotation is guarded on the old
    refresh token's row, which the logout revokes, so the refresh waits for it and is refused."""
    from idp.sessions.models import SsoSession
    from tests.conftest import exchange

    rp = make_rp(pg_app, first_party=True)
    code, verifier, _ = Browser(pg_app.test_client()).code(rp)
    refresh_token = exchange(pg_app.test_client(), rp, code, verifier).get_json()["refresh_token"]
    session_id = db.session.execute(select(SsoSession.id)).scalar_one()
    db.session.remove()

    status, body = _race_with_logout(pg_app, monkeypatch, session_id, lambda: pg_app.test_client().post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}, headers=basic(rp)))
    assert status == 400 and body["error"] == "invalid_grant", body
    assert _live_tokens(pg_app, session_id) == 0


def test_two_processes_ending_one_session_tell_its_subsites_once(pg_app, monkeypatch):
    """The expiry sweeps of several nodes (or a logout meeting an operator's) may end the same session
    at once: the one that commits second finds it ended and does nothing, so there is one
    ``session.ended`` event and one logout token per subsite (Back-Channel Logout 1.0 §2.5)."""
    from idp.audit.models import AuditEvent
    from idp.sessions.logout import end_sessions
    from idp.sessions.models import LogoutDelivery, SsoSession
    from tests.conftest import exchange

    rp = make_rp(pg_app, first_party=True, backchannel_logout_uri="https://rp.example.cn/bc")
    code, verifier, _ = Browser(pg_app.test_client()).code(rp)
    assert exchange(pg_app.test_client(), rp, code, verifier).status_code == 200
    session_id = db.session.execute(select(SsoSession.id)).scalar_one()
    db.session.remove()

    def second():
        with pg_app.app_context():
            read_as_live = db.session.get(SsoSession, session_id)
            assert read_as_live.ended_at is None  # the first has not committed yet
            front = end_sessions([read_as_live], reason="expired", actor="system")
            db.session.remove()
            return front

    assert _race_with_logout(pg_app, monkeypatch, session_id, second) == []
    with pg_app.app_context():
        assert db.session.execute(select(func.count()).select_from(LogoutDelivery)).scalar() == 1
        ended = db.session.execute(select(AuditEvent.detail).where(AuditEvent.action == "session.ended")).scalars().all()
        assert ended == [{"reason": "logout", "clients": 1, "backchannel_queued": 1}]
        assert db.session.get(SsoSession, session_id).end_reason == "logout"
