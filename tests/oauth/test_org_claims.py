"""Acting for a business at a subsite: the ``org`` scope and claim, the choice of whom one acts for,
switching without signing out, revocation, and the ``official`` claim.

OIDC Core 1.0 §5.4 (claims requested by scope), §3.1.2.6 (``interaction_required`` when
``prompt=none`` cannot show a page), §5.3 (UserInfo).
"""
from __future__ import annotations

import json
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.accounts.support import HUAWEI, TENCENT, audit_actions, citizen
from tests.conftest import PASSWORD, Browser, basic, exchange, form_fields, make_rp


@pytest.fixture
def people(app):
    from idp.accounts import representation as reps
    from idp.accounts.businesses import register_business

    boss = citizen("boss", verified=True, name="马化腾")
    clerk = citizen("clerk", name="李经办")
    tencent = register_business(representative=boss, uscc=TENCENT, name="腾讯科技（深圳）有限公司")
    huawei = register_business(representative=boss, uscc=HUAWEI, name="华为技术有限公司")
    grant = reps.authorize_agent(business=tencent, username="clerk", by=boss)
    reps.confirm(grant.id, clerk)
    return {"boss": boss, "clerk": clerk, "tencent": tencent, "huawei": huawei, "grant": grant}


def _form(resp):
    html = resp.get_data(as_text=True)
    action = unescape(re.search(r'<form method="post" action="([^"]+)"', html).group(1))
    return action, form_fields(html)


def _is_chooser(resp) -> bool:
    return resp.status_code == 200 and b'name="act_as"' in resp.data


def authorize(client, rp, *, scope="openid profile org", choose=None, extra=None):
    """Run /authorize for a signed-in browser; pick ``choose`` (a business public id or "self") if asked.

    Returns (response, asked) where ``asked`` says whether the chooser page was shown."""
    resp = Browser(client).authorize(rp, scope=scope, extra=extra, consent=None)
    verifier = resp.verifier
    asked = _is_chooser(resp)
    if asked and choose is not None:
        action, fields = _form(resp)
        resp = client.post(action, data={**fields, "act_as": choose})
    if resp.status_code == 200 and b'name="decision"' in resp.data:
        action, fields = _form(resp)
        resp = client.post(action, data={**fields, "decision": "allow"})
    resp.verifier = verifier
    return resp, asked


def _claims(client, rp, resp):
    """Exchange the code: (ID token claims, UserInfo claims)."""
    assert resp.status_code == 302, resp.get_data(as_text=True)[:400]
    code = parse_qs(urlsplit(resp.location).query)["code"][0]
    tok = exchange(client, rp, code, resp.verifier)
    assert tok.status_code == 200, tok.get_json()
    body = tok.get_json()
    idt = jwt.decode(body["id_token"], KeySet.import_key_set(client.get("/jwks.json").get_json())).claims
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}).get_json()
    return idt, info, body


@pytest.fixture
def subsite(app):
    return make_rp(app, name="市场监管子站", first_party=False)


def login(client, username):
    resp = Browser(client).login(username, PASSWORD)
    assert resp.status_code == 303


def test_chosen_business_is_in_id_token_and_userinfo(client, subsite, people):
    login(client, "boss")
    resp, asked = authorize(client, subsite, choose=people["tencent"].public_id)
    assert asked
    idt, info, _ = _claims(client, subsite, resp)
    org = {"id": people["tencent"].public_id, "name": "腾讯科技（深圳）有限公司", "uscc": TENCENT,
           "role": "legal_representative"}
    assert idt["org"] == org and info["org"] == org
    assert "representation.acting_changed" in audit_actions()


def test_chooser_lists_whom_one_may_act_for_in_chinese_by_default(client, subsite, people):
    login(client, "boss")
    resp, asked = authorize(client, subsite)
    html = resp.get_data(as_text=True)
    assert asked and "选择您代表的主体" in html
    values = re.findall(r'name="act_as" value="([^"]+)"', html)
    assert sorted(values) == sorted([people["tencent"].public_id, people["huawei"].public_id, "self"])
    assert 'name="csrf_token"' in html


def test_switching_changes_what_a_new_authorization_gets(client, subsite, people):
    """Switch on the businesses page (no sign-out): the next authorization carries the new choice."""
    login(client, "boss")
    resp, _ = authorize(client, subsite, choose=people["tencent"].public_id)
    assert _claims(client, subsite, resp)[0]["org"]["id"] == people["tencent"].public_id

    page = client.get("/account/businesses")
    fields = form_fields(page.get_data(as_text=True))
    switched = client.post("/account/act-as", data={"csrf_token": fields["csrf_token"], "next": "/account/businesses",
                                                     "act_as": people["huawei"].public_id})
    assert switched.status_code == 303
    resp, asked = authorize(client, subsite)
    assert not asked  # the session already knows
    idt, info, _ = _claims(client, subsite, resp)
    assert idt["org"]["id"] == info["org"]["id"] == people["huawei"].public_id

    client.post("/account/act-as", data={"csrf_token": fields["csrf_token"], "act_as": "self"})
    resp, asked = authorize(client, subsite)
    assert not asked  # "myself" is a choice too: not asked again in this session
    idt, info, _ = _claims(client, subsite, resp)
    assert "org" not in idt and "org" not in info


def test_choosing_myself_at_the_subsite(client, subsite, people):
    login(client, "boss")
    resp, asked = authorize(client, subsite, choose="self")
    assert asked
    idt, info, _ = _claims(client, subsite, resp)
    assert "org" not in idt and "org" not in info
    assert not authorize(client, subsite)[1]


def test_revoked_agent_is_signed_out_of_the_business_everywhere(client, app, people):
    """Revoking an agent's authorization ends the agent's sessions acting for the business: each
    subsite of such a session gets a back-channel logout token (Back-Channel Logout 1.0 §2.4-§2.5),
    the tokens obtained while acting for it are revoked (an ``offline_access`` grant too), and a
    session of the same agent acting for themselves carries on."""
    from idp.accounts import representation as reps
    from idp.sessions.models import LogoutDelivery, SsoSession

    subsite = make_rp(app, name="市场监管子站", first_party=False, backchannel_logout_uri="https://rp.example.cn/bc")
    login(client, "clerk")
    resp, asked = authorize(client, subsite, scope="openid profile org offline_access",
                            choose=people["tencent"].public_id, extra={"prompt": "consent"})
    assert asked
    idt, info, tokens = _claims(client, subsite, resp)
    assert idt["org"]["role"] == "agent" and info["org"]["id"] == people["tencent"].public_id
    own = app.test_client()  # the clerk on another device, acting for themselves
    login(own, "clerk")
    own_resp, _ = authorize(own, subsite, choose="self")
    own_tokens = _claims(own, subsite, own_resp)[2]

    reps.revoke(people["grant"].id, people["boss"])
    acting = SsoSession.query.filter_by(sid=idt["sid"]).one()
    assert acting.ended_at is not None and acting.end_reason == "representation_revoked"
    delivery = LogoutDelivery.query.filter_by(sid=idt["sid"]).one()
    assert delivery.client_id == subsite["client_id"] and delivery.status == "pending"
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).status_code == 401
    refresh = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                          headers=basic(subsite))
    assert refresh.status_code == 400 and refresh.get_json()["error"] == "invalid_grant"
    assert "representation.revoked" in audit_actions() and "session.ended" in audit_actions()
    # the other session carries on, without the business
    info = own.get("/userinfo", headers={"Authorization": "Bearer " + own_tokens["access_token"]})
    assert info.status_code == 200 and "org" not in info.get_json()
    # signed in again: nothing left to choose, and no org
    assert authorize(client, subsite)[0].location.startswith("/login")
    login(client, "clerk")
    resp, asked = authorize(client, subsite)
    assert not asked
    idt, info, _ = _claims(client, subsite, resp)
    assert "org" not in idt and "org" not in info


def test_a_code_issued_while_acting_dies_with_the_authorization(client, app, people):
    """The revocation's own transaction expires the codes issued while acting through it: the
    sessions end only after its commit, and a code redeemed in between (``offline_access``, so
    the session's end would not revoke its token) would outlive both (RFC 6749 §10.5: a code is
    short-lived and single-use; here it is dead once its grant is)."""
    from idp.accounts import representation as reps
    from idp.accounts.models import Representation
    from idp.db import db, transaction

    subsite = make_rp(app, name="市场监管子站", first_party=False)
    login(client, "clerk")
    resp, _ = authorize(client, subsite, scope="openid org offline_access",
                        choose=people["tencent"].public_id, extra={"prompt": "consent"})
    assert resp.status_code == 302
    with transaction():  # the revocation's transaction, before its sessions are ended
        reps.end_representation(db.session.get(Representation, people["grant"].id))
    code = parse_qs(urlsplit(resp.location).query)["code"][0]
    refused = exchange(client, subsite, code, resp.verifier)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"


def test_prompt_none_needing_a_choice_is_interaction_required(client, subsite, people):
    """OIDC Core §3.1.2.6: the choice needs a page, so prompt=none gets interaction_required."""
    login(client, "boss")
    Browser(client).authorize(subsite, scope="openid", consent="allow")  # consent given, no org asked
    resp, _ = authorize(client, subsite, scope="openid org", extra={"prompt": "none"})
    q = parse_qs(urlsplit(resp.location).query)
    assert resp.status_code == 302 and q["error"] == ["interaction_required"]
    assert q["iss"] == ["http://127.0.0.1:5000"]


def test_without_org_scope_nothing_is_asked(client, subsite, people):
    login(client, "boss")
    resp, asked = authorize(client, subsite, scope="openid profile")
    assert not asked
    idt, info, _ = _claims(client, subsite, resp)
    assert "org" not in idt and "org" not in info


def test_a_subsite_not_registered_for_org_never_sees_it(client, app, people):
    rp = make_rp(app, name="无 org 子站", scopes=["openid", "profile"], redirect_uri="https://noorg.example.cn/cb")
    login(client, "boss")
    resp, asked = authorize(client, rp, scope="openid org")
    assert not asked
    idt, info, _ = _claims(client, rp, resp)
    assert "org" not in idt and "org" not in info


def test_a_person_without_businesses_is_not_asked(client, subsite, people):
    citizen("plain")
    login(client, "plain")
    resp, asked = authorize(client, subsite)
    assert not asked and resp.status_code == 302


def test_choice_needs_the_csrf_token_and_a_business_one_represents(client, subsite, people):
    login(client, "boss")
    resp, _ = authorize(client, subsite)
    action, fields = _form(resp)
    forged = client.post(action, data={"act_as": people["tencent"].public_id})
    assert forged.status_code == 400
    other = citizen("other", verified=True)
    from idp.accounts.businesses import register_business

    foreign = register_business(representative=other, uscc="91100000100003962T", name="中国工商银行股份有限公司")
    refused = client.post(action, data={**fields, "act_as": foreign.public_id})
    assert refused.status_code == 403
    assert "representation.acting_changed" not in audit_actions()


def test_official_claim(client, app, people):
    from idp.accounts import officials

    officials.create_department(code="SCJGJ", name="本溪市市场监督管理局")
    officials.add_official(username="clerk", department="SCJGJ", role="approver")
    rp = make_rp(app, name="内部审批", scopes=["openid", "official"], redirect_uri="https://staff.example.cn/cb")
    login(client, "clerk")
    resp, asked = authorize(client, rp, scope="openid official")
    assert not asked
    idt, info, _ = _claims(client, rp, resp)
    expected = [{"department": "SCJGJ", "department_name": "本溪市市场监督管理局", "role": "approver"}]
    assert idt["official"] == expected and info["official"] == expected
    officials.remove_official(username="clerk", department="SCJGJ")
    # The session in which the subsite received the claim ended with the membership; signed in again,
    # the person is no longer the department's official anywhere.
    assert authorize(client, rp, scope="openid official")[0].status_code == 303
    login(client, "clerk")
    resp, _ = authorize(client, rp, scope="openid official")
    idt, info, _ = _claims(client, rp, resp)
    assert "official" not in idt and "official" not in info


def test_client_credentials_cannot_get_org(client, app):
    """Client credentials carry no person, so org and official are refused like other user scopes."""
    from tests.conftest import basic

    rp = make_rp(app, name="机器", grant_types=["client_credentials"], scopes=["org"], redirect_uri="https://m.example.cn/cb")
    resp = client.post("/token", data={"grant_type": "client_credentials", "scope": "org"}, headers=basic(rp))
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_scope"


def test_discovery_lists_org_and_official(client):
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert {"org", "official"} <= set(meta["scopes_supported"])
    assert {"org", "official"} <= set(meta["claims_supported"])


def test_consent_page_says_what_org_releases(client, subsite, people):
    login(client, "boss")
    client.set_cookie("idp_lang", "en")
    resp, _ = authorize(client, subsite, choose=None)
    action, fields = _form(resp)
    consent = client.post(action, data={**fields, "act_as": people["tencent"].public_id})
    assert b'name="decision"' in consent.data
    assert "The business you act for" in consent.get_data(as_text=True)


def test_a_new_legal_representative_takes_over_at_once(client, app, people, runner):
    """``idp businesses set-representative``: the previous representative's sessions acting for the
    business end (back-channel logout) and its tokens are revoked; the new one, who was an agent, acts
    as the representative at the next sign-in."""
    from idp.db import transaction, utcnow
    from idp.sessions.models import LogoutDelivery, SsoSession

    subsite = make_rp(app, name="市场监管子站", first_party=False, backchannel_logout_uri="https://rp.example.cn/bc")
    login(client, "boss")
    resp, _ = authorize(client, subsite, choose=people["tencent"].public_id)
    idt, _, tokens = _claims(client, subsite, resp)
    assert idt["org"]["role"] == "legal_representative"

    unverified = runner.invoke(args=["businesses", "set-representative", "--business", people["tencent"].public_id,
                                     "--username", "clerk"])
    assert unverified.exit_code != 0 and "real name" in unverified.output and "Traceback" not in unverified.output
    with transaction():
        people["clerk"].level, people["clerk"].identity_verified_at = 2, utcnow()
    r = runner.invoke(args=["businesses", "set-representative", "--business", people["tencent"].public_id,
                            "--username", "clerk"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"id": people["tencent"].public_id, "representative": "clerk",
                                    "tokens_revoked": 1, "sessions_ended": 1}
    assert SsoSession.query.filter_by(sid=idt["sid"]).one().end_reason == "representation_revoked"
    assert LogoutDelivery.query.filter_by(sid=idt["sid"]).count() == 1
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).status_code == 401
    assert "business.representative_changed" in audit_actions()
    again = runner.invoke(args=["businesses", "set-representative", "--business", people["tencent"].public_id,
                                "--username", "clerk"])
    assert again.exit_code != 0 and "already the legal representative" in again.output

    clerk = app.test_client()
    login(clerk, "clerk")
    resp, _ = authorize(clerk, subsite, choose=people["tencent"].public_id)
    assert _claims(clerk, subsite, resp)[0]["org"]["role"] == "legal_representative"
    login(client, "boss")  # boss still represents huawei, not tencent
    resp, asked = authorize(client, subsite)
    values = re.findall(r'name="act_as" value="([^"]+)"', resp.get_data(as_text=True))
    assert asked and sorted(values) == sorted([people["huawei"].public_id, "self"])
