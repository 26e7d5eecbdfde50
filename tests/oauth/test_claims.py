"""Claim release: scope claims (OIDC Core 1.0 §5.4), the ``claims`` request (§5.5), and the
resident ID number (scope ``id_card``, claim ``id_card_number``): only to a client registered for
it, only with the separate consent, only at assurance level 2 (PIPL Art. 28-29).

https://openid.net/specs/openid-connect-core-1_0.html#ScopeClaims
"""
from __future__ import annotations

import pytest

from idp.audit.models import AuditEvent
from tests.conftest import basic, make_rp
from tests.oauth.privacy_support import (EMAIL, ID_NUMBER, PHONE, answer, consent_page, decode, sign_in,
                                         tokens_for, userinfo)

ALL = "openid profile email phone id_card"


@pytest.fixture
def id_rp(app):
    """A subsite registered for the ID number (not first-party)."""
    return make_rp(app, name="人社局", redirect_uri="https://rsj.example.cn/cb",
                   scopes=["openid", "profile", "email", "phone", "id_card"])


def _release(client, browser, user, rp, scope, *, level=1, share_id_card=False, claims_request=None):
    sign_in(browser, user, level)
    page = consent_page(browser, rp, scope)
    resp = answer(client, page, share_id_card=share_id_card) if page.status_code == 200 else page
    return tokens_for(client, rp, resp, claims_request)


@pytest.mark.parametrize("scope, expected", [
    ("openid", {"sub"}),
    ("openid profile", {"sub", "name", "preferred_username", "updated_at"}),
    ("openid email", {"sub", "email", "email_verified"}),
    ("openid phone", {"sub", "phone_number", "phone_number_verified"}),
    ("openid profile email phone", {"sub", "name", "preferred_username", "updated_at", "email", "email_verified",
                                    "phone_number", "phone_number_verified"}),
])
def test_userinfo_releases_exactly_the_claims_of_the_granted_scopes(client, browser, user, rp, scope, expected):
    """§5.4: each scope releases its claims at UserInfo, and nothing else is released."""
    body = userinfo(client, _release(client, browser, user, rp, scope)["access_token"]).get_json()
    assert set(body) == expected
    if "email" in expected:
        assert body["email"] == EMAIL and body["email_verified"] is False
    if "phone_number" in expected:
        assert body["phone_number"] == "+86" + PHONE
    if "name" in expected:
        assert body["name"] == "张三" and body["preferred_username"] == "alice"


def test_id_token_carries_requested_claims_only_within_the_granted_scopes(client, browser, user, rp):
    """§5.5: claims asked for in the ``id_token`` member go into the ID token, but a ``claims``
    request never widens the scopes: ``email`` without the email scope is not released."""
    plain = _release(client, browser, user, rp, "openid profile")
    claims = decode(client, plain["id_token"])
    assert "name" not in claims and "email" not in claims  # without a claims request: sub only (§5.4)
    asked = {"id_token": {"name": {"essential": True}, "email": None, "phone_number": None},
             "userinfo": {"email": None}}
    body = _release(client, browser, user, rp, "openid profile phone", claims_request=asked)
    claims = decode(client, body["id_token"])
    assert claims["name"] == "张三" and claims["phone_number"] == "+86" + PHONE
    assert "email" not in claims and "preferred_username" not in claims
    assert "email" not in userinfo(client, body["access_token"]).get_json()


def test_id_number_is_released_with_consent_at_level_two(client, browser, user, id_rp):
    """The ID number reaches a registered subsite after the separate consent at level 2."""
    body = _release(client, browser, user, id_rp, ALL, level=2, share_id_card=True,
                    claims_request={"id_token": {"id_card_number": {"essential": True}}})
    assert userinfo(client, body["access_token"]).get_json()["id_card_number"] == ID_NUMBER
    assert decode(client, body["id_token"])["id_card_number"] == ID_NUMBER
    assert "id_card" in body["scope"].split()


def test_id_number_not_released_to_a_client_not_registered_for_it(client, browser, user, rp):
    """A client without ``id_card`` in its registration never gets it, even asking at level 2."""
    body = _release(client, browser, user, rp, ALL, level=2, share_id_card=True,
                    claims_request={"id_token": {"id_card_number": None}})
    assert "id_card_number" not in userinfo(client, body["access_token"]).get_json()
    assert "id_card_number" not in decode(client, body["id_token"])
    assert "id_card" not in body["scope"].split()


def test_id_number_not_released_without_the_separate_consent(client, browser, user, id_rp):
    """"Allow" alone is not consent to the ID number: the box must be ticked (PIPL Art. 29)."""
    body = _release(client, browser, user, id_rp, ALL, level=2, share_id_card=False)
    info = userinfo(client, body["access_token"]).get_json()
    assert "id_card_number" not in info and info["phone_number"] == "+86" + PHONE
    assert "id_card" not in body["scope"].split()
    event = AuditEvent.query.filter_by(action="consent.granted").order_by(AuditEvent.id.desc()).first()
    assert event.detail["sensitive_declined"] == ["id_card"]


def test_id_number_not_released_at_level_one(client, browser, user, id_rp):
    """A level-1 sign-in (password only) never releases the ID number, whatever was ticked."""
    body = _release(client, browser, user, id_rp, ALL, level=1, share_id_card=True,
                    claims_request={"id_token": {"id_card_number": None}})
    assert "id_card_number" not in userinfo(client, body["access_token"]).get_json()
    assert "id_card_number" not in decode(client, body["id_token"])


def test_release_rechecks_the_level_of_the_token(app, client, browser, user, id_rp):
    """Defence in depth: a token whose acr is below level 2 releases no ID number, even if its
    scope says id_card (the step-up is enforced again at release)."""
    from idp.db import db
    from idp.oauth.models import Token

    body = _release(client, browser, user, id_rp, ALL, level=2, share_id_card=True)
    Token.query.update({"acr": "urn:idp:loa:1"})
    db.session.commit()
    info = userinfo(client, body["access_token"]).get_json()
    assert "id_card_number" not in info and "phone_number" in info


def test_id_number_consent_is_asked_every_time_even_for_first_party(client, browser, user, app):
    """The separate consent is not remembered for later authorizations and not skipped for
    first-party subsites; basic claims of a first-party subsite still need no page."""
    rp = make_rp(app, name="政务服务", redirect_uri="https://zw.example.cn/cb", first_party=True,
                 scopes=["openid", "profile", "id_card"])
    sign_in(browser, user, level=2)
    for _ in range(2):
        page = consent_page(browser, rp, "openid profile id_card")
        assert page.status_code == 200 and b'name="consent_sensitive"' in page.data
        body = tokens_for(client, rp, answer(client, page, share_id_card=True))
        assert userinfo(client, body["access_token"]).get_json()["id_card_number"] == ID_NUMBER
    assert consent_page(browser, rp, "openid profile").status_code == 302  # no page without id_card


def test_id_card_at_level_one_asks_nothing_of_a_first_party_subsite(client, browser, user, app):
    """At level 1 nothing sensitive can be released, so a first-party subsite gets its code at once."""
    rp = make_rp(app, name="政务服务", redirect_uri="https://zw.example.cn/cb", first_party=True,
                 scopes=["openid", "profile", "id_card"])
    sign_in(browser, user, level=1)
    resp = consent_page(browser, rp, "openid profile id_card")
    assert resp.status_code == 302
    body = tokens_for(client, rp, resp)
    assert "id_card" not in body["scope"].split()


def test_a_later_no_stops_release_on_earlier_tokens(client, browser, user, id_rp):
    """The latest answer about the ID number wins: declining it later stops its release on
    tokens issued after an earlier yes."""
    first = _release(client, browser, user, id_rp, ALL, level=2, share_id_card=True)
    assert "id_card_number" in userinfo(client, first["access_token"]).get_json()
    _release(client, browser, user, id_rp, ALL, level=2, share_id_card=False)
    assert "id_card_number" not in userinfo(client, first["access_token"]).get_json()


def test_client_credentials_never_get_id_card(client, app):
    """User scopes, id_card included, are never granted to a client acting for itself."""
    svc = make_rp(app, name="数据交换", redirect_uri="https://svc.example.cn/cb",
                  grant_types=["client_credentials"], scopes=["id_card"])
    resp = client.post("/token", data={"grant_type": "client_credentials", "scope": "id_card"}, headers=basic(svc))
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_scope"


def test_discovery_lists_the_id_card_scope_and_claim(client):
    """OIDC Discovery §3: scopes_supported and claims_supported list what the hub releases."""
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert "id_card" in meta["scopes_supported"] and "id_card_number" in meta["claims_supported"]
