"""Logout everywhere: OIDC RP-Initiated Logout 1.0, Back-Channel Logout 1.0, Front-Channel Logout 1.0."""
from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.db import db, utcnow
from idp.sessions.delivery import deliver_due
from idp.sessions.models import LogoutDelivery, SsoSession
from tests.conftest import Browser, basic, exchange, form_fields, make_rp
from tests.sessions.receiver import Receiver

EVENT = "http://schemas.openid.net/event/backchannel-logout"


def _rp(app, receiver=None, **kw):
    return make_rp(app, first_party=True, redirect_uri=kw.pop("redirect_uri", "https://rp.example.cn/cb"),
                   post_logout_redirect_uris=["https://rp.example.cn/bye"],
                   backchannel_logout_uri=receiver.url if receiver else None, **kw)


def _login(client, browser, rp, scope="openid profile", **kw):
    code, verifier, _ = browser.code(rp, scope=scope, **kw)
    body = exchange(client, rp, code, verifier).get_json()
    assert "id_token" in body, body
    return body


def _live(user):
    return SsoSession.query.filter_by(person_id=user.id, ended_at=None).all()


def _due_now():
    """Let backoff pass without sleeping: make every pending delivery due."""
    LogoutDelivery.query.filter_by(status="pending").update({"next_attempt_at": utcnow(), "locked_until": None})
    db.session.commit()


def test_discovery_advertises_logout(client):
    """RP-Initiated §2.1, Back-Channel §2.1, Front-Channel §3: metadata."""
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["end_session_endpoint"] == "http://127.0.0.1:5000/logout"
    for flag in ("backchannel_logout_supported", "backchannel_logout_session_supported",
                 "frontchannel_logout_supported", "frontchannel_logout_session_supported"):
        assert meta[flag] is True


def test_rp_initiated_logout_with_hint_redirects_with_state(app, client, browser, user):
    """RP-Initiated §2-§3: a valid id_token_hint for this session logs out at once and redirects
    to the registered post_logout_redirect_uri with state; tokens of the session stop working."""
    rp = _rp(app)
    tokens = _login(client, browser, rp)
    resp = client.get("/logout?" + urlencode({"id_token_hint": tokens["id_token"], "state": "xyz",
                                              "post_logout_redirect_uri": "https://rp.example.cn/bye"}))
    assert resp.status_code == 303 and resp.location == "https://rp.example.cn/bye?state=xyz"
    assert _live(user) == []
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).status_code == 401
    assert client.post("/introspect", data={"token": tokens["access_token"]}, headers=basic(rp)).get_json() == {"active": False}
    refresh = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                          headers=basic(rp))
    assert refresh.get_json()["error"] == "invalid_grant"
    # the browser is signed out at the hub: the next authorization asks for a login
    assert browser.authorize(rp).location.startswith("/login")


def test_unregistered_post_logout_redirect_uri_is_not_followed(app, client, browser, user):
    """RP-Initiated §3: an unregistered post_logout_redirect_uri MUST NOT be redirected to."""
    rp = _rp(app)
    tokens = _login(client, browser, rp)
    resp = client.get("/logout?" + urlencode({"id_token_hint": tokens["id_token"],
                                              "post_logout_redirect_uri": "https://evil.example/"}))
    assert resp.status_code == 200 and b"evil.example" not in resp.data
    assert _live(user) == []


def test_logout_without_hint_asks_for_confirmation(app, client, browser, user):
    """RP-Initiated §2 and §6 (logout CSRF): a request not tied to the session needs the person's confirmation."""
    rp = _rp(app)
    _login(client, browser, rp)
    page = client.get("/logout")
    assert page.status_code == 200 and b'name="decision" value="logout"' in page.data
    assert len(_live(user)) == 1
    forged = client.post("/logout", data={"decision": "logout"})  # no CSRF token
    assert forged.status_code == 400 and len(_live(user)) == 1
    resp = client.post("/logout", data={**form_fields(page.get_data(as_text=True)), "decision": "logout"})
    assert resp.status_code == 200 and _live(user) == []


@pytest.mark.parametrize("hint", ["not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
def test_bad_hint_does_not_log_out_silently(app, client, browser, user, hint):
    """A forged or unsigned id_token_hint is never trusted: the person is asked instead."""
    rp = _rp(app)
    _login(client, browser, rp)
    page = client.get("/logout?" + urlencode({"id_token_hint": hint}))
    assert page.status_code == 200 and b'value="logout"' in page.data
    assert len(_live(user)) == 1


def test_hint_signed_by_another_key_is_refused(app, client, browser, user):
    from joserfc.jwk import RSAKey

    rp = _rp(app)
    real = jwt.decode(_login(client, browser, rp)["id_token"], KeySet.import_key_set(client.get("/jwks.json").get_json()))
    forged = jwt.encode({"alg": "RS256", "kid": real.header["kid"]}, real.claims, RSAKey.generate_key(2048))
    page = client.get("/logout?" + urlencode({"id_token_hint": forged}))
    assert b'value="logout"' in page.data and len(_live(user)) == 1


def test_expired_hint_is_accepted(app, client, browser, user):
    """RP-Initiated §2: the OP SHOULD accept an expired ID token as a hint for its session."""
    from idp.keystore.jwt import sign_jwt

    rp = _rp(app)
    claims = jwt.decode(_login(client, browser, rp)["id_token"], KeySet.import_key_set(client.get("/jwks.json").get_json())).claims
    claims.update(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    expired = sign_jwt({"typ": "JWT"}, claims, "RS256")
    resp = client.get("/logout?" + urlencode({"id_token_hint": expired}))
    assert resp.status_code == 200 and b'value="logout"' not in resp.data
    assert _live(user) == []


def test_client_id_must_match_the_hint(app, client, browser, user):
    rp, other = _rp(app), _rp(app, redirect_uri="https://other.example.cn/cb")
    tokens = _login(client, browser, rp)
    resp = client.get("/logout?" + urlencode({"id_token_hint": tokens["id_token"], "client_id": other["client_id"]}))
    assert resp.status_code == 400 and len(_live(user)) == 1


def test_logout_without_a_session_just_completes(app, client):
    """An already-ended session: nothing to do, redirect only to a registered URI."""
    rp = _rp(app)
    resp = client.get("/logout?" + urlencode({"client_id": rp["client_id"], "state": "s",
                                              "post_logout_redirect_uri": "https://rp.example.cn/bye"}))
    assert resp.status_code == 303 and resp.location == "https://rp.example.cn/bye?state=s"


def test_backchannel_logout_token_is_delivered_to_every_participating_client(app, client, browser, user):
    """Back-Channel §2.4-§2.5: a logout token (typ logout+jwt; iss aud iat exp jti events sid sub;
    no nonce) is POSTed to each client of the session; the user's response never waits for it."""
    with Receiver() as r1, Receiver() as r2:
        a = _rp(app, r1)
        b = _rp(app, r2, redirect_uri="https://rp2.example.cn/cb")
        tokens = _login(client, browser, a)
        _login(client, browser, b)
        client.get("/logout?" + urlencode({"id_token_hint": tokens["id_token"]}))
        assert r1.received == [] and r2.received == []  # stored, not attempted, during the request
        assert LogoutDelivery.query.filter_by(status="pending").count() == 2
        assert deliver_due() == 2
        assert len(r1.received) == 1 and len(r2.received) == 1
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    sid = jwt.decode(tokens["id_token"], keys).claims["sid"]
    for raw, rp in ((r1.received[0], a), (r2.received[0], b)):
        tok = jwt.decode(raw, keys)
        assert tok.header["typ"] == "logout+jwt"
        c = tok.claims
        assert c["iss"] == "http://127.0.0.1:5000" and c["aud"] == rp["client_id"]
        assert c["sid"] == sid and c["sub"] == user.sub and c["events"] == {EVENT: {}}
        assert "nonce" not in c and c["jti"] and c["exp"] > c["iat"]
    assert {d.status for d in LogoutDelivery.query} == {"delivered"}
    assert deliver_due() == 0  # nothing is delivered twice


def test_failing_subsite_gets_its_token_after_retries(app, client, browser, user):
    """Reliability: non-2xx answers are retried with backoff until one succeeds."""
    with Receiver(statuses=[500, 503]) as r:
        tokens = _login(client, browser, _rp(app, r))
        client.get("/logout?" + urlencode({"id_token_hint": tokens["id_token"]}))
        deliver_due()
        d = LogoutDelivery.query.one()
        assert d.status == "pending" and d.attempts == 1 and d.last_error == "HTTP 500"
        assert d.next_attempt_at > utcnow()  # backoff: not due again at once
        assert deliver_due() == 0
        for _ in range(2):
            _due_now()
            deliver_due()
        assert len(r.received) == 3 and r.received[0] != "" and len(set(r.received)) >= 1
    d = LogoutDelivery.query.one()
    assert d.status == "delivered" and d.attempts == 3
    claims = [jwt.decode(t, KeySet.import_key_set(client.get("/jwks.json").get_json())).claims for t in r.received]
    assert len({c["jti"] for c in claims}) == 1  # the same logout, recognisable as such by the subsite


def test_exhausted_retries_are_visible_to_operators(app, client, browser, user, runner):
    """Failures that exhaust their retries are marked failed, audited, listed, and can be requeued."""
    from idp.audit.models import AuditEvent

    app.config["LOGOUT_MAX_ATTEMPTS"] = 2
    with Receiver(statuses=[500] * 10) as r:
        tokens = _login(client, browser, _rp(app, r))
        client.get("/logout?" + urlencode({"id_token_hint": tokens["id_token"]}))
        deliver_due()
        _due_now()
        deliver_due()
    assert LogoutDelivery.query.one().status == "failed"
    assert AuditEvent.query.filter_by(action="logout.delivery_failed").count() == 1
    listed = json.loads(runner.invoke(args=["logout", "deliveries", "--status", "failed"]).stdout)
    assert len(listed) == 1 and listed[0]["last_error"] == "HTTP 500"
    assert json.loads(runner.invoke(args=["logout", "retry"]).stdout) == {"requeued": 1}
    with Receiver() as ok:
        d = LogoutDelivery.query.one()
        d.uri = ok.url
        db.session.commit()
        deliver_due()
    assert LogoutDelivery.query.one().status == "delivered"


def test_unreachable_subsite_and_a_dead_workers_lease(app, client, browser, user):
    """A subsite that is down is retried; a claim whose worker died is picked up after its lease."""
    tokens = _login(client, browser, _rp(app, None))
    from idp.oauth.models import Client

    c = Client.query.one()
    c.backchannel_logout_uri = "http://127.0.0.1:9/backchannel-logout"  # nothing listens there
    db.session.commit()
    client.get("/logout?" + urlencode({"id_token_hint": tokens["id_token"]}))
    deliver_due()
    d = LogoutDelivery.query.one()
    assert d.status == "pending" and d.last_error.startswith("connection error")
    # a worker claimed it and died: the lease blocks others until it expires
    d.next_attempt_at, d.locked_until = utcnow(), utcnow() + timedelta(seconds=30)
    db.session.commit()
    assert deliver_due() == 0
    d.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    with Receiver() as r:
        d.uri = r.url
        db.session.commit()
        assert deliver_due() == 1 and len(r.received) == 1


def test_offline_access_outlives_logout(app, client, browser, user):
    """OIDC Core §11: refresh tokens granted offline_access are not revoked at logout."""
    rp = _rp(app)
    tokens = _login(client, browser, rp, scope="openid offline_access", extra={"prompt": "consent"})
    client.get("/logout?" + urlencode({"id_token_hint": tokens["id_token"]}))
    resp = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                       headers=basic(rp))
    assert resp.status_code == 200, resp.get_json()


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])  # lean and general paths
@pytest.mark.parametrize("ending", ["logout", "expiry"])
def test_a_code_issued_before_the_session_ended_is_refused(app, client, browser, user, ending, auth_method):
    """Back-Channel Logout §2.7's promise (the subsite signs the person out) would be broken by a code
    the subsite redeems after its logout token: a subsite still in the middle of its sign-in when the
    person logs out elsewhere. The code exchange refuses a code whose session has ended (RFC 6749
    §5.2 ``invalid_grant``), issues nothing, and does not take it for a replay; even an
    ``offline_access`` code, which would have outlived the logout had it been redeemed before."""
    from idp.audit.models import AuditEvent
    from idp.oauth.models import AuthorizationCode, Token
    from idp.sessions.logout import end_expired_sessions

    first = _rp(app)
    late = make_rp(app, first_party=True, redirect_uri="https://late.example.cn/cb", auth_method=auth_method)
    signed_in = _login(client, browser, first)
    code, verifier, _ = browser.code(late, scope="openid offline_access", extra={"prompt": "consent"})
    if ending == "logout":
        client.get("/logout?" + urlencode({"id_token_hint": signed_in["id_token"]}))
    else:
        SsoSession.query.filter_by(person_id=user.id).update({"idle_expires_at": utcnow() - timedelta(seconds=1)})
        db.session.commit()
        assert end_expired_sessions() == 1
    assert _live(user) == []
    stored = Token.query.count()
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": late["redirect_uri"],
            "code_verifier": verifier}
    if auth_method == "client_secret_post":
        resp = client.post("/token", data={**data, "client_id": late["client_id"],
                                           "client_secret": late["client_secret"]})
    else:
        resp = exchange(client, late, code, verifier)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant", resp.get_json()
    assert "session" in resp.get_json()["error_description"]
    assert resp.headers["Cache-Control"] == "no-store"
    db.session.remove()
    assert Token.query.count() == stored
    assert AuthorizationCode.query.filter_by(client_id=late["client_id"]).one().used_at is None
    assert AuditEvent.query.filter_by(action="code.replayed").count() == 0


def test_a_code_of_a_live_session_is_still_redeemed_after_another_session_ends(app, client, browser, user):
    """Only the code's own session counts: ending another session of the same person changes nothing."""
    rp = _rp(app)
    code, verifier, _ = browser.code(rp)
    from idp.sessions.service import start_session

    with app.test_request_context("/"):
        other, _ = start_session(user, acr="1", amr=["pwd"])  # the same person on another device
    from idp.sessions.logout import end_sessions

    end_sessions([other], reason="logout", actor="test")
    assert len(_live(user)) == 1
    resp = exchange(client, rp, code, verifier)
    assert resp.status_code == 200 and "id_token" in resp.get_json(), resp.get_json()


def test_front_channel_logout_iframes(app, client, browser, user):
    """Front-Channel §2-§4: the logged-out page loads each client's frontchannel_logout_uri with iss and sid."""
    rp = make_rp(app, first_party=True, frontchannel_logout_uri="https://rp.example.cn/fc")
    tokens = _login(client, browser, rp)
    resp = client.get("/logout?" + urlencode({"id_token_hint": tokens["id_token"]}))
    html = resp.get_data(as_text=True)
    src = unescape(re.search(r'<iframe src="([^"]+)"', html).group(1))
    q = parse_qs(urlsplit(src).query)
    assert src.startswith("https://rp.example.cn/fc?") and q["iss"] == ["http://127.0.0.1:5000"] and q["sid"]
    assert "frame-src https://rp.example.cn" in resp.headers["Content-Security-Policy"]


def test_sessions_page_lists_and_ends_sessions(app, client, browser, user):
    """The citizen sees their sessions and the subsites in each, and can sign out everywhere."""
    with Receiver() as r:
        rp = _rp(app, r)
        _login(client, browser, rp)
        page = client.get("/account/sessions")
        assert page.status_code == 200 and "测试子站" in page.get_data(as_text=True)
        fields = form_fields(page.get_data(as_text=True))
        resp = client.post("/account/sessions/end", data={"csrf_token": fields["csrf_token"], "sid": "all"})
        assert resp.status_code == 200 and _live(user) == []
        assert deliver_due() == 1 and len(r.received) == 1


def test_disabling_an_account_logs_it_out_everywhere(app, client, browser, user, runner):
    with Receiver() as r:
        _login(client, browser, _rp(app, r))
        out = json.loads(runner.invoke(args=["users", "disable", "alice"]).stdout)
        assert out["sessions_ended"] == 1 and _live(user) == []
        assert deliver_due() == 1


def test_a_disabled_account_s_offline_tokens_are_inactive_everywhere(app, client, browser, user, runner):
    """``offline_access`` grants outlive a logout (OIDC Core §11), not the account: disabling it
    revokes them, so introspection says inactive (RFC 7662 §2.2) for the access and the refresh
    token, UserInfo refuses (RFC 6750 §3.1) and the refresh grant too (RFC 6749 §5.2)."""
    from idp.audit.models import AuditEvent

    rp = _rp(app)
    tokens = _login(client, browser, rp, scope="openid offline_access", extra={"prompt": "consent"})
    out = json.loads(runner.invoke(args=["users", "disable", "alice"]).stdout)
    assert out["tokens_revoked"] == 1 and out["sessions_ended"] == 1
    for value in (tokens["access_token"], tokens["refresh_token"]):
        assert client.post("/introspect", data={"token": value}, headers=basic(rp)).get_json() == {"active": False}
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).status_code == 401
    refresh = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                          headers=basic(rp))
    assert refresh.status_code == 400 and refresh.get_json()["error"] == "invalid_grant"
    assert AuditEvent.query.filter_by(action="account.disabled").one().detail == {"tokens_revoked": 1}


def test_introspection_reads_the_account_s_status_too(app, client, browser, user):
    """However an account came to be inactive, its tokens are inactive at introspection, as at UserInfo."""
    from idp.accounts.models import Person

    rp = _rp(app)
    tokens = _login(client, browser, rp, scope="openid offline_access", extra={"prompt": "consent"})
    assert client.post("/introspect", data={"token": tokens["access_token"]}, headers=basic(rp)).get_json()["active"]
    Person.query.filter_by(id=user.id).update({"status": "disabled"})
    db.session.commit()
    for value in (tokens["access_token"], tokens["refresh_token"]):
        assert client.post("/introspect", data={"token": value}, headers=basic(rp)).get_json() == {"active": False}


def test_expired_sessions_are_ended_and_announced(app, client, browser, user):
    from idp.sessions.logout import end_expired_sessions

    with Receiver() as r:
        _login(client, browser, _rp(app, r))
        s = SsoSession.query.one()
        s.idle_expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        assert end_expired_sessions() == 1 and SsoSession.query.one().end_reason == "expired"
        assert deliver_due() == 1 and len(r.received) == 1


def test_an_operator_ends_one_session_or_all_of_an_account(app, client, browser, user, runner):
    """``idp sessions end SID`` and ``--username``: the same logout fan-out as any other (§2.4)."""
    rp = make_rp(app, first_party=True, redirect_uri="https://rp.example.cn/cb",
                 backchannel_logout_uri="https://rp.example.cn/bc")
    _login(client, browser, rp)
    other = app.test_client()
    Browser(other).login()
    sids = sorted(s.sid for s in _live(user))
    assert len(sids) == 2
    one = runner.invoke(args=["sessions", "end", sids[0]])
    assert one.exit_code == 0 and json.loads(one.stdout) == {"ended": sids[0]}
    again = runner.invoke(args=["sessions", "end", sids[0]])
    assert again.exit_code != 0 and "already ended (operator)" in again.output
    everything = runner.invoke(args=["sessions", "end", "--username", "alice"])
    assert everything.exit_code == 0 and json.loads(everything.stdout) == {"ended": [sids[1]]}
    assert _live(user) == [] and LogoutDelivery.query.count() == 1  # the subsite's session got its token
    for args, message in ((["nosuch"], "no session 'nosuch'"), (["--username", "nobody"], "no account 'nobody'"),
                          ([], "give a session id, or --username")):
        r = runner.invoke(args=["sessions", "end", *args])
        assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output
