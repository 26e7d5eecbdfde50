"""Helpers for the claim-release, consent and pairwise tests: sign in at a level, answer the consent
page by hand (the ``Browser`` helper ticks every checkbox), exchange codes, read tokens."""
from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet

from idp.db import db
from idp.oauth.models import AuthorizationCode
from idp.oauth.tokens import digest
from idp.sessions.models import SsoSession
from tests.conftest import exchange, form_fields

LEVEL1, LEVEL2 = "urn:idp:loa:1", "urn:idp:loa:2"
ID_NUMBER, PHONE, EMAIL = "11010519491231002X", "13800138000", "alice@example.cn"


def sign_in(browser, user, level: int = 1) -> None:
    """Password login; level 2 stands for the step-up another part of the hub performs (TOTP on a
    verified account): the session's acr is raised as that step does."""
    assert browser.login().status_code == 303
    if level == 2:
        SsoSession.query.filter_by(person_id=user.id, ended_at=None).update({"acr": LEVEL2})
        db.session.commit()


def consent_page(browser, rp, scope: str, **kw):
    """The response to /authorize for a signed-in person, without answering any consent page."""
    return browser.authorize(rp, scope=scope, follow_login=None, consent=None, **kw)


def answer(client, page, decision: str = "allow", share_id_card: bool = False):
    """Submit the consent form as a person would: the ID-number box ticked only when asked to."""
    html = page.get_data(as_text=True)
    action = unescape(re.search(r'<form method="post" action="([^"]+)"', html).group(1))
    fields = {k: v for k, v in form_fields(html).items() if k != "consent_sensitive"}
    if share_id_card:
        fields["consent_sensitive"] = "id_card"
    resp = client.post(action, data={**fields, "decision": decision})
    resp.params, resp.verifier = page.params, page.verifier
    return resp


def code_of(resp) -> str:
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    return parse_qs(urlsplit(resp.location).query)["code"][0]


def tokens_for(client, rp, resp, claims_request: dict | None = None) -> dict:
    """Exchange the code of an authorization response; ``claims_request`` stands for what the
    ``claims`` parameter parser stores on the code (OIDC Core §5.5)."""
    code = code_of(resp)
    if claims_request is not None:
        AuthorizationCode.query.filter_by(code_digest=digest(code)).update({"claims_request": claims_request})
        db.session.commit()
    r = exchange(client, rp, code, resp.verifier)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def decode(client, token: str) -> dict:
    return jwt.decode(token, KeySet.import_key_set(client.get("/jwks.json").get_json())).claims


def userinfo(client, access_token: str):
    return client.get("/userinfo", headers={"Authorization": "Bearer " + access_token})
