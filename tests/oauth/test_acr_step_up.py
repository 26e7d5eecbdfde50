"""Assurance asked for by a subsite: ``acr_values`` (OIDC Core §3.1.2.1), ``acr`` as an Essential Claim
(§5.5.1.1), the step-up of a session that is below (DESIGN.md "Assurance": never silently accepted),
``interaction_required`` under ``prompt=none`` (§3.1.2.6) and ``unmet_authentication_requirements``
(OpenID Connect Core Unmet Authentication Requirements 1.0 §2)."""
from __future__ import annotations

import json
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet

from idp.audit.models import AuditEvent
from idp.db import db
from idp.oauth.models import AuthorizationCode
from idp.sessions.models import SsoSession
from idp.sessions.service import find_session
from tests.authn.support import clock, enroll, in_request, login_with_code  # noqa: F401
from tests.conftest import exchange, form_fields

LOA1, LOA2, LOA3 = "urn:idp:loa:1", "urn:idp:loa:2", "urn:idp:loa:3"


def _q(resp):
    return parse_qs(urlsplit(resp.location).query)


def _id_token(client, rp, resp) -> dict:
    code = _q(resp)["code"][0]
    tokens = exchange(client, rp, code, resp.verifier).get_json()
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    return jwt.decode(tokens["id_token"], keys).claims


def _verified(user):
    user.level = 2
    db.session.commit()


def test_step_up_raises_the_session_in_place(app, client, browser, rp2, user, clock, in_request):
    """Signed in with a password (level 1); the subsite asks for level 2; the step-up page takes a TOTP
    code; the same session (same sid) is raised with a new cookie value, and the ID token says
    acr level 2 with amr pwd, otp, mfa (RFC 8176 §2)."""
    _verified(user)
    browser.login()
    before = SsoSession.query.one()
    sid, auth_time, old_cookie = before.sid, before.auth_time, client.get_cookie("idp_session").value
    secret, _ = enroll(user, clock)  # set up afterwards, in the same session

    page = browser.authorize(rp2, extra={"acr_values": LOA2})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'action="/login/step-up"' in html and 'name="otp"' in html
    assert AuthorizationCode.query.count() == 0
    fields = form_fields(html)
    assert fields["next"].startswith("/authorize?")

    back = client.post("/login/step-up", data={**fields, "otp": clock.code(secret)})
    assert back.status_code == 303 and back.location == fields["next"]
    assert client.get_cookie("idp_session").value != old_cookie
    assert find_session(old_cookie) is None  # the old cookie value no longer opens the session

    done = client.get(back.location)
    assert done.status_code == 302 and done.location.startswith(rp2["redirect_uri"])
    done.verifier = page.verifier
    claims = _id_token(client, rp2, done)
    assert claims["acr"] == LOA2 and claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["sid"] == sid  # subsites' logout still matches the session
    s = SsoSession.query.one()
    assert s.sid == sid and s.acr == LOA2 and s.auth_time >= auth_time and s.ended_at is None
    assert AuditEvent.query.filter_by(action="session.stepped_up").count() == 1


def test_a_wrong_step_up_code_shows_the_page_again_with_the_reason(app, client, browser, rp2, user, clock, in_request):
    _verified(user)
    browser.login()
    enroll(user, clock)
    page = browser.authorize(rp2, extra={"acr_values": LOA2, "ui_locales": "en"})
    fields = form_fields(page.get_data(as_text=True))
    back = client.post("/login/step-up", data={**fields, "otp": "000000"})
    assert back.status_code == 303 and back.location == fields["next"]
    again = client.get(back.location)
    body = again.get_data(as_text=True)
    assert again.status_code == 200 and "That code is not right" in body and 'role="alert"' in body
    assert SsoSession.query.one().acr == LOA1


def test_session_already_at_the_level_needs_no_step_up(app, client, rp2, user, clock, in_request, browser):
    """A verified person who signed in with TOTP is at level 2: acr_values=level 2 gives a code at once."""
    _verified(user)
    secret, _ = enroll(user, clock)
    assert login_with_code(client, clock.code(secret)).status_code == 303
    resp = browser.authorize(rp2, extra={"acr_values": LOA2})
    assert resp.status_code == 302 and "code" in _q(resp)
    assert _id_token(client, rp2, resp)["acr"] == LOA2


def test_step_up_impossible_explains_and_offers_the_way_back(app, client, browser, rp2, user):
    """No TOTP and no verified identity: a page says what to do, and its way back to the subsite carries
    ``error=unmet_authentication_requirements`` with ``state`` and ``iss`` (never a silent downgrade)."""
    browser.login()
    resp = browser.authorize(rp2, extra={"acr_values": LOA2, "ui_locales": "en"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 403 and 'name="otp"' not in html
    assert "real name verified" in html and 'href="/account/security"' in html
    back = unescape(re.search(r'<a href="([^"]+)">Return to', html).group(1))
    q = parse_qs(urlsplit(back).query)
    assert back.startswith(rp2["redirect_uri"] + "?")
    assert q["error"] == ["unmet_authentication_requirements"] and q["state"] == [resp.params["state"]]
    assert q["iss"] == ["http://127.0.0.1:5000"] and "code" not in q
    assert AuthorizationCode.query.count() == 0


def test_totp_without_verified_identity_cannot_reach_level_2(app, client, browser, rp2, user, clock, in_request):
    secret, _ = enroll(user, clock)
    assert login_with_code(client, clock.code(secret)).status_code == 303
    resp = browser.authorize(rp2, extra={"acr_values": LOA2, "ui_locales": "en"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 403 and "real name verified" in html and "Set up an authenticator app" not in html


def test_prompt_none_with_a_step_up_needed_is_interaction_required(app, client, browser, rp2, user, clock, in_request):
    """OIDC Core §3.1.2.6: the step-up needs the person, so prompt=none gets interaction_required."""
    _verified(user)
    browser.login()
    enroll(user, clock)
    resp = browser.authorize(rp2, extra={"acr_values": LOA2, "prompt": "none"})
    assert resp.status_code == 302 and _q(resp)["error"] == ["interaction_required"]
    assert _q(resp)["state"] == [resp.params["state"]]


def test_essential_acr_that_cannot_be_met_is_an_error(app, client, browser, rp2, user):
    """OIDC Core §5.5.1.1: an essential acr that cannot be met is a failed authentication; the subsite
    gets unmet_authentication_requirements (unknown values are never met; level 3 is certificate login,
    see tests/authn/test_certificate_login.py)."""
    for values in (["urn:example:unknown"],):
        claims = json.dumps({"id_token": {"acr": {"essential": True, "values": values}}})
        resp = browser.authorize(rp2, extra={"claims": claims})
        assert resp.status_code == 302 and resp.location.startswith(rp2["redirect_uri"])
        assert _q(resp)["error"] == ["unmet_authentication_requirements"], values
    assert AuthorizationCode.query.count() == 0


def test_essential_acr_of_level_2_steps_up(app, client, browser, rp2, user, clock, in_request):
    _verified(user)
    browser.login()
    secret, _ = enroll(user, clock)
    claims = json.dumps({"id_token": {"acr": {"essential": True, "value": LOA2}}})
    page = browser.authorize(rp2, extra={"claims": claims})
    assert page.status_code == 200 and 'name="otp"' in page.get_data(as_text=True)
    fields = form_fields(page.get_data(as_text=True))
    done = client.get(client.post("/login/step-up", data={**fields, "otp": clock.code(secret)}).location)
    done.verifier = page.verifier
    assert _id_token(client, rp2, done)["acr"] == LOA2


def test_voluntary_acr_values_any_listed_level_satisfies(app, client, browser, rp2, user):
    """§3.1.2.1: acr_values is a preference list; a level-1 session satisfies "level 2 or level 1", and
    values we do not know are ignored (voluntary); the ID token carries the real level."""
    browser.login()
    for values in (f"{LOA2} {LOA1}", "urn:example:unknown"):
        resp = browser.authorize(rp2, extra={"acr_values": values})
        assert resp.status_code == 302 and "code" in _q(resp), values
        assert _id_token(client, rp2, resp)["acr"] == LOA1


def test_level_3_sends_a_password_session_to_certificate_login(client, browser, rp2, user):
    """Never a silent downgrade: level 3 is certificate login, so a password session gets a page that
    leads there (``/login/certificate?next=<this authorization>``), and no code."""
    browser.login()
    for extra in ({"acr_values": LOA3}, {"claims": json.dumps({"id_token": {"acr": {"essential": True,
                                                                                      "values": [LOA3]}}})}):
        resp = browser.authorize(rp2, extra=extra)
        html = resp.get_data(as_text=True)
        assert resp.status_code == 200 and 'name="otp"' not in html
        link = unescape(re.search(r'href="(/login/certificate\?[^"]+)"', html).group(1))
        assert parse_qs(urlsplit(link).query)["next"][0].startswith("/authorize?")
    assert AuthorizationCode.query.count() == 0


def test_id_card_scope_wants_level_2(app, in_request):
    """Policy (issue 4): the resident ID number (PIPL sensitive personal information) only at level ≥ 2:
    wanted (stepped up to when possible), not required (otherwise the number is withheld)."""
    from werkzeug.datastructures import MultiDict

    from idp.oauth.acr import requirement_of

    class Client:
        def get_allowed_scope(self, scope):
            return " ".join(s for s in scope.split() if s in {"openid", "profile", "id_card"})

    sensitive = requirement_of(MultiDict({"scope": "openid id_card"}), Client())
    assert (sensitive.level, sensitive.wanted) == (1, 2)
    plain = requirement_of(MultiDict({"scope": "openid profile"}), Client())
    assert (plain.level, plain.wanted) == (1, 1)


def test_id_card_steps_up_a_person_who_can_and_releases_the_number(app, client, browser, user, clock, in_request):
    """A verified person with TOTP, signed in with a password, is asked for a code when a subsite wants
    the ID number; after it the number is released (with its own consent)."""
    from tests.conftest import make_rp

    _verified(user)
    browser.login()
    secret, _ = enroll(user, clock)
    rp = make_rp(app, name="公积金中心", scopes=["openid", "profile", "id_card"])
    page = browser.authorize(rp, scope="openid id_card", consent=None)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'action="/login/step-up"' in html
    back = client.post("/login/step-up", data={**form_fields(html), "otp": clock.code(secret)})
    consent = client.get(back.location)
    assert consent.status_code == 200 and 'name="decision"' in consent.get_data(as_text=True)
    assert SsoSession.query.one().acr == LOA2
