"""Certificate login through the TLS proxy (issue 5, "Certificate login in the browser"), with the
Flask test client standing in for nginx: the forwarded ``X-SSL-Client-Cert`` (nginx's
``$ssl_client_escaped_cert``: the URL-escaped PEM) is trusted only from IDP_TRUSTED_PROXIES, the hub
validates the certificate itself (RFC 5280 §6), a success is level 3 with amr ``swk`` (RFC 8176 §2),
and every refusal names its reason. Real nginx: tests/e2e/test_live_certificate_login.py."""
from __future__ import annotations

import datetime as dt
import json
import re
from html import unescape
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.audit.models import AuditEvent
from idp.db import db
from idp.oauth.models import AuthorizationCode
from idp.sessions.models import SsoSession
from tests.conftest import exchange, form_fields
from tests.pki.conftest import NOW, P12_PASSWORD, craft, make_official, quick_pkcs12  # noqa: F401

LOA3 = "urn:idp:loa:3"
TRUSTED = "127.0.0.1"  # the test client's address
ELSEWHERE = "198.51.100.7"


@pytest.fixture
def app_config():
    return {"TRUSTED_PROXIES": TRUSTED}


@pytest.fixture
def issuing(ca):
    return ca.issuing.certificate, ca.issuing.private_key(None)


def issue(username="wangwu"):
    """An official's certificate from the hub's CA: (serial, certificate)."""
    from idp.pki.service import issue_pkcs12

    summary, p12 = issue_pkcs12(username, P12_PASSWORD)
    _, cert, _ = pkcs12.load_key_and_certificates(p12, P12_PASSWORD.encode())
    return summary["serial"], cert


@pytest.fixture
def official(ca):
    return make_official()


def escaped(cert) -> str:
    """What nginx puts in $ssl_client_escaped_cert: the PEM, URL-encoded."""
    return quote(cert.public_bytes(Encoding.PEM).decode(), safe="")


def cert_login(client, value, *, verdict="SUCCESS", remote=TRUSTED, next_url="/account", lang="en"):
    headers = {"X-SSL-Client-Verify": verdict}
    if value is not None:
        headers["X-SSL-Client-Cert"] = value
    return client.get("/login/certificate?" + urlencode({"next": next_url, "lang": lang}), headers=headers,
                      environ_base={"REMOTE_ADDR": remote})


def _events(action):
    return AuditEvent.query.filter_by(action=action).all()


def test_a_trusted_proxy_forwarding_a_valid_certificate_signs_in_at_level_3(client, official):
    """The session is level 3 (acr urn:idp:loa:3) with amr ["swk"] (RFC 8176 §2: proof of possession of
    a software-secured key; the server cannot tell where a browser keeps it), and ``next`` is kept."""
    _, cert = issue()
    resp = cert_login(client, escaped(cert))
    assert resp.status_code == 303 and resp.location == "/account"
    s = SsoSession.query.one()
    assert (s.acr, s.amr, s.person.username) == (LOA3, ["swk"], "wangwu")
    assert client.get_cookie("idp_session") is not None
    assert [e.detail for e in _events("login.succeeded")] == [{"method": "swk"}]


def test_revoking_the_certificate_ends_the_sessions_signed_in_with_it(app, client, official):
    """RFC 5280 §5.3.1 keyCompromise: whoever holds the key must lose what it opened. Revoking the
    certificate ends the live sessions whose certificate sign-in used it (their subsites get a
    back-channel logout, Back-Channel Logout 1.0 §2.4); the same official's other sessions carry on."""
    from idp.pki.service import revoke_certificate
    from idp.sessions.models import LogoutDelivery
    from tests.conftest import Browser, make_rp

    serial, cert = issue()
    assert cert_login(client, escaped(cert)).status_code == 303
    rp = make_rp(app, first_party=True, backchannel_logout_uri="https://rp.example.cn/bc")
    resp = Browser(client).authorize(rp)
    assert resp.status_code == 302 and "code=" in resp.location
    _, other = issue()  # a second certificate of the same official, signed in on another device
    elsewhere = app.test_client()
    assert cert_login(elsewhere, escaped(other)).status_code == 303

    result = revoke_certificate(serial, "keyCompromise")
    assert result["sessions_ended"] == 1
    ended = SsoSession.query.filter(SsoSession.ended_at.isnot(None)).one()
    assert ended.end_reason == "certificate_revoked" and ended.certificate_fingerprint is not None
    assert LogoutDelivery.query.filter_by(sid=ended.sid, client_id=rp["client_id"]).count() == 1
    assert SsoSession.query.filter_by(ended_at=None).count() == 1  # the other certificate's session
    assert Browser(client).authorize(rp, follow_login=False).location.startswith("/login")
    assert [e.detail["reason"] for e in _events("session.ended")] == ["certificate_revoked"]


def test_removing_the_official_ends_the_sessions_that_hold_the_role(app, official):
    """Ending a staff membership ends what it opened: the sessions signed in with a certificate
    issued for it, and those in which a subsite received the ``official`` claim (that subsite would
    otherwise go on treating the person as the department's official; Back-Channel Logout 1.0 §2.4
    tells it). A session signed in with another membership's certificate, with no such subsite, stays."""
    from idp.accounts.officials import add_official, create_department, remove_official
    from idp.pki.service import issue_pkcs12
    from idp.sessions.models import LogoutDelivery
    from tests.conftest import Browser, make_rp

    create_department(code="rsj", name="本溪市人力资源和社会保障局")
    add_official(username="wangwu", department="rsj")

    def signed_in(department):
        summary, p12 = issue_pkcs12("wangwu", P12_PASSWORD, department=department)
        browser = app.test_client()
        assert cert_login(browser, escaped(pkcs12.load_key_and_certificates(p12, P12_PASSWORD.encode())[1])
                          ).status_code == 303
        return browser

    officials_rp = make_rp(app, first_party=True, scopes=["openid", "profile", "official"],
                           redirect_uri="https://oa.example.cn/cb", backchannel_logout_uri="https://oa.example.cn/bc")
    citizens_rp = make_rp(app, first_party=True, backchannel_logout_uri="https://rp.example.cn/bc")

    def sign_in_at(browser, rp, scope):
        resp = Browser(browser).authorize(rp, scope=scope)
        code = parse_qs(urlsplit(resp.location).query)["code"][0]
        assert exchange(browser, rp, code, resp.verifier).status_code == 200

    with_its_certificate = signed_in("scjgj")
    sign_in_at(with_its_certificate, citizens_rp, "openid profile")
    other_membership = signed_in("rsj")
    sign_in_at(other_membership, citizens_rp, "openid profile")
    claim_released = signed_in("rsj")
    sign_in_at(claim_released, officials_rp, "openid official")
    sid = {b: _sid(b) for b in (with_its_certificate, other_membership, claim_released)}

    remove_official(username="wangwu", department="scjgj")

    ended = {s.sid: s.end_reason for s in SsoSession.query.filter(SsoSession.ended_at.isnot(None))}
    assert ended == {sid[with_its_certificate]: "official_removed", sid[claim_released]: "official_removed"}
    assert {(d.sid, d.client_id) for d in LogoutDelivery.query} == {
        (sid[with_its_certificate], citizens_rp["client_id"]), (sid[claim_released], officials_rp["client_id"])}
    event = AuditEvent.query.filter_by(action="official.removed").one()
    assert event.detail == {"department": "scjgj", "sessions_ended": 2, "tokens_revoked": 0}
    assert Browser(other_membership).authorize(citizens_rp).status_code == 302  # still signed in


def test_closing_the_department_ends_its_officials_sessions(app, official):
    """A department closed (merged, dissolved): each of its staff memberships ends as one removal
    does, audited one by one; an official of another department carries on."""
    from idp.accounts.officials import add_official, close_department, create_department, list_departments
    from idp.errors import Conflict
    from tests.pki.conftest import make_official

    create_department(code="rsj", name="本溪市人力资源和社会保障局")
    make_official(username="lisi", name="李四", department=("rsj", "本溪市人力资源和社会保障局"))
    add_official(username="wangwu", department="rsj")
    signed_in = {}
    for username, department in (("wangwu", "scjgj"), ("lisi", "rsj")):
        from idp.pki.service import issue_pkcs12

        _, p12 = issue_pkcs12(username, P12_PASSWORD, department=department)
        browser = app.test_client()
        cert = pkcs12.load_key_and_certificates(p12, P12_PASSWORD.encode())[1]
        assert cert_login(browser, escaped(cert)).status_code == 303
        signed_in[username] = _sid(browser)

    result = close_department("scjgj")
    assert result == {"code": "scjgj", "status": "closed", "officials_removed": 1, "sessions_ended": 1,
                      "tokens_revoked": 0}
    ended = {s.sid: s.end_reason for s in SsoSession.query.filter(SsoSession.ended_at.isnot(None))}
    assert ended == {signed_in["wangwu"]: "official_removed"}
    assert {d.code: d.status for d in list_departments()} == {"rsj": "active", "scjgj": "closed"}
    removed = _events("official.removed")
    assert len(removed) == 1 and removed[0].detail["department"] == "scjgj"
    assert [e.detail for e in _events("department.closed")] == [{"officials": 1}]
    with pytest.raises(Conflict, match="already closed"):
        close_department("scjgj")


def _sid(browser) -> str:
    """The SSO session's public id behind a test client's cookie."""
    from idp.sessions.service import find_session

    return find_session(browser.get_cookie("idp_session").value).sid


def test_next_is_only_ever_one_of_our_paths(client, official):
    _, cert = issue()
    resp = cert_login(client, escaped(cert), next_url="https://evil.example/x")
    assert resp.status_code == 303 and resp.location == "/"


@pytest.mark.parametrize("remote", [ELSEWHERE, "127.0.0.2"])
def test_a_header_from_an_untrusted_address_is_ignored_and_audited(client, official, remote):
    """Only IDP_TRUSTED_PROXIES may forward a client certificate: a valid certificate's PEM sent
    straight to the hub signs nobody in; the attempt is audited (no personal data)."""
    _, cert = issue()
    resp = cert_login(client, escaped(cert), remote=remote)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 403 and 'data-reason="no_certificate"' in html and 'role="alert"' in html
    assert SsoSession.query.count() == 0 and client.get_cookie("idp_session") is None
    spoofed = _events("login.certificate_header_spoofed")
    assert len(spoofed) == 1 and spoofed[0].outcome == "failure" and "wangwu" not in json.dumps(spoofed[0].detail)


def test_the_verdict_header_alone_from_elsewhere_is_audited_too(client, official):
    resp = cert_login(client, None, remote=ELSEWHERE)
    assert resp.status_code == 403 and len(_events("login.certificate_header_spoofed")) == 1


def test_forwarded_for_does_not_make_a_request_trusted(client, official):
    """X-Forwarded-For names the client, never the peer: claiming to be the proxy changes nothing."""
    _, cert = issue()
    resp = client.get("/login/certificate", headers={"X-SSL-Client-Cert": escaped(cert),
                                                     "X-Forwarded-For": TRUSTED},
                      environ_base={"REMOTE_ADDR": ELSEWHERE})
    assert resp.status_code == 403 and SsoSession.query.count() == 0


def test_the_hub_validates_whatever_nginx_said(client, official):
    """A "SUCCESS" verdict does not make a revoked certificate good, and nginx's verdict is not needed
    for a good one (the hub checks chain, validity, revocation and mapping itself)."""
    from idp.pki.service import revoke_certificate

    serial, cert = issue()
    assert cert_login(client, escaped(cert), verdict="FAILED:unable to get issuer certificate").status_code == 303
    revoke_certificate(serial, "keyCompromise")
    resp = cert_login(client, escaped(cert), verdict="SUCCESS")
    assert resp.status_code == 403 and "The certificate has been revoked." in resp.get_data(as_text=True)


def _crafted(issuing, kind):
    """A certificate refused for ``kind`` (RFC 5280 §4.1.2.5 validity, §4.2.1.12 extendedKeyUsage, …)."""
    if kind == "expired":
        return craft(*issuing, not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1))[0]
    if kind == "not_yet_valid":
        return craft(*issuing, not_before=NOW + dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=30))[0]
    if kind == "wrong_purpose":
        return craft(*issuing, eku=[ExtendedKeyUsageOID.SERVER_AUTH])[0]
    if kind == "unknown_ca":
        other_root, other_key = craft(None, None, ca=True, eku=None, key_usage=None)
        return craft(other_root, other_key)[0]
    if kind == "unmapped":  # signed by the hub's CA, but not one it issued to an official
        return craft(*issuing)[0]
    raise AssertionError(kind)


REASONS = {
    "expired": ("The certificate has expired.", "证书已过期"),
    "not_yet_valid": ("The certificate is not valid yet.", None),
    "wrong_purpose": ("The certificate is not meant for signing in.", None),
    "unknown_ca": ("The certificate was not issued by a certificate authority this service trusts.", None),
    "unmapped": ("The certificate does not belong to an official of this service.", None),
}


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_each_refusal_names_its_reason_and_is_audited(client, official, issuing, reason):
    cert = _crafted(issuing, reason)
    resp = cert_login(client, escaped(cert))
    html = unescape(resp.get_data(as_text=True))
    assert resp.status_code == 403 and REASONS[reason][0] in html and f'data-reason="{reason}"' in html
    assert SsoSession.query.count() == 0
    assert [e.detail for e in _events("login.failed")] == [{"method": "swk", "reason": reason}]


def test_revoked_and_invalid_and_missing(client, official):
    from idp.pki.service import revoke_certificate

    serial, cert = issue()
    revoke_certificate(serial, "keyCompromise")
    cases = [(escaped(cert), "revoked", "The certificate has been revoked."),
             (quote("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"), "invalid",
              "This is not a valid certificate."),
             ("", "no_certificate", "Your browser did not present a certificate."),
             (None, "no_certificate", "Your browser did not present a certificate.")]
    for value, reason, text in cases:
        resp = cert_login(client, value, verdict="NONE" if not value else "SUCCESS")
        html = unescape(resp.get_data(as_text=True))
        assert resp.status_code == 403 and text in html and f'data-reason="{reason}"' in html, reason
    assert [e.detail["reason"] for e in _events("login.failed")] == ["revoked", "invalid", "no_certificate",
                                                                   "no_certificate"]
    assert SsoSession.query.count() == 0


def test_the_reason_is_translated(client, official):
    """Chinese is the default language."""
    from idp.pki.service import revoke_certificate

    serial, cert = issue()
    revoke_certificate(serial, "superseded")
    html = client.get("/login/certificate", headers={"X-SSL-Client-Cert": escaped(cert)}).get_data(as_text=True)
    assert "证书已被吊销" in html and "证书登录" in html


def _q(resp):
    return parse_qs(urlsplit(resp.location).query)


def _id_token(client, rp, code, verifier) -> dict:
    tokens = exchange(client, rp, code, verifier).get_json()
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    return jwt.decode(tokens["id_token"], keys).claims


def _consent(client, resp):
    if resp.status_code == 200 and b'name="decision"' in resp.data:
        html = resp.get_data(as_text=True)
        action = unescape(re.search(r'<form method="post" action="([^"]+)"', html).group(1))
        resp = client.post(action, data={**form_fields(html), "decision": "allow"})
    return resp


def test_a_subsite_asking_for_level_3_gets_a_level_3_id_token(client, browser, rp2, official):
    """OIDC Core §3.1.2.1 acr_values: with no session, the person signs in with the certificate (login
    page → certificate login keeps ``next``) and the ID token says acr urn:idp:loa:3, amr ["swk"]."""
    _, cert = issue()
    start = browser.authorize(rp2, extra={"acr_values": LOA3}, consent=None)
    assert start.status_code == 303 and start.location.startswith("/login?")
    next_url = _q(start)["next"][0]
    back = cert_login(client, escaped(cert), next_url=next_url)
    assert back.status_code == 303 and back.location == next_url
    resp = _consent(client, client.get(back.location))
    assert resp.status_code == 302 and "code" in _q(resp), resp.get_data(as_text=True)[:400]
    claims = _id_token(client, rp2, _q(resp)["code"][0], start.verifier)
    assert claims["acr"] == LOA3 and claims["amr"] == ["swk"]


def test_a_password_session_is_stepped_up_in_place(app, client, browser, rp2, user, ca):
    """A person signed in with a password (level 1) whose subsite asks for level 3 gets the step-up page
    linking to certificate login; the certificate raises the same session (same sid, new cookie) to
    level 3 with amr pwd, swk, mfa (RFC 8176 §2: two kinds of factor)."""
    from idp.accounts.officials import add_official, create_department

    create_department(code="scjgj", name="本溪市市场监督管理局")
    add_official(username="alice", department="scjgj")
    _, cert = issue("alice")
    browser.login()
    sid, old_cookie = SsoSession.query.one().sid, client.get_cookie("idp_session").value
    page = browser.authorize(rp2, extra={"acr_values": LOA3}, consent=None)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and AuthorizationCode.query.count() == 0
    link = unescape(re.search(r'href="(/login/certificate\?[^"]+)"', html).group(1))
    next_url = _q(type("R", (), {"location": link}))["next"][0]
    back = cert_login(client, escaped(cert), next_url=next_url)
    assert back.status_code == 303 and back.location == next_url
    s = SsoSession.query.one()
    assert s.sid == sid and s.acr == LOA3 and s.amr == ["pwd", "swk", "mfa"]
    assert client.get_cookie("idp_session").value != old_cookie
    resp = _consent(client, client.get(back.location))
    assert resp.status_code == 302 and "code" in _q(resp)
    claims = _id_token(client, rp2, _q(resp)["code"][0], page.verifier)
    assert claims["acr"] == LOA3 and claims["amr"] == ["pwd", "swk", "mfa"] and claims["sid"] == sid


def test_another_persons_certificate_replaces_the_session(client, browser, user, official):
    """A certificate of someone else never raises the signed-in person's session: a new session."""
    _, cert = issue()
    browser.login()
    old = SsoSession.query.one()
    assert cert_login(client, escaped(cert)).status_code == 303
    db.session.expire_all()
    live = SsoSession.query.filter(SsoSession.ended_at.is_(None)).all()
    assert [s.person.username for s in live] == ["wangwu"] and live[0].sid != old.sid


def test_a_failed_step_up_records_no_login_and_keeps_the_level(app, client, browser, user, ca, monkeypatch):
    """The step-up of a live session records ``login.succeeded`` and raises the session's level in one
    transaction (as a new session does): a failure between the two leaves neither."""
    from idp.accounts.officials import add_official, create_department
    from idp.sessions import service as sessions

    create_department(code="scjgj", name="本溪市市场监督管理局")
    add_official(username="alice", department="scjgj")
    _, cert = issue("alice")
    browser.login()
    before = SsoSession.query.one()
    sid, acr, amr = before.sid, before.acr, list(before.amr)
    events_before = [(e.id, e.action) for e in AuditEvent.query.order_by(AuditEvent.id).all()]
    real_record = sessions.record

    class Boom(RuntimeError):
        pass

    def failing_record(action, **kw):
        if action == "session.stepped_up":  # after the login was recorded and the level set
            raise Boom("injected")
        return real_record(action, **kw)

    monkeypatch.setattr(sessions, "record", failing_record)
    assert cert_login(client, escaped(cert)).status_code == 500  # the app's error page, with a reference
    db.session.expire_all()
    after = SsoSession.query.one()
    assert (after.sid, after.acr, list(after.amr)) == (sid, acr, amr) and acr != LOA3
    assert [(e.id, e.action) for e in AuditEvent.query.order_by(AuditEvent.id).all()] == events_before

    monkeypatch.setattr(sessions, "record", real_record)
    assert cert_login(client, escaped(cert)).status_code == 303
    db.session.expire_all()
    assert SsoSession.query.one().acr == LOA3
    new = [e.action for e in AuditEvent.query.order_by(AuditEvent.id).all()][len(events_before):]
    assert new == ["login.succeeded", "session.stepped_up"], new
