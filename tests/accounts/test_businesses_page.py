"""The citizen's businesses page, ``/account/businesses``, and ``/account/act-as``: thin views over the
services, every form with a CSRF token and labelled inputs, errors announced (role="alert")."""
from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import select

from idp.accounts.models import Business, Representation
from idp.db import db
from tests.accounts.support import TENCENT, audit_actions, citizen
from tests.conftest import PASSWORD, Browser, form_fields

PAGE = "/account/businesses"


def signed_in(app, username):
    client = app.test_client()
    client.set_cookie("idp_lang", "en")
    assert Browser(client).login(username, PASSWORD).status_code == 303
    return client


def csrf(client) -> str:
    return form_fields(client.get(PAGE).get_data(as_text=True))["csrf_token"]


def test_needs_a_signed_in_person(client):
    resp = client.get(PAGE)
    assert resp.status_code == 303 and resp.location.startswith("/login?next=%2Faccount%2Fbusinesses")
    assert client.post("/account/act-as", data={}).status_code in (303, 400)


def test_page_is_chinese_by_default_and_every_input_is_labelled(app, boss, business):
    client = app.test_client()
    Browser(client).login("boss", PASSWORD)
    html = client.get(PAGE).get_data(as_text=True)
    assert '<html lang="zh-CN">' in html and "我的单位" in html and "腾讯科技（深圳）有限公司" in html
    ids = re.findall(r'<(?:input|select)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', html)
    assert len(ids) >= 6  # act-as choices, agent form, registration form
    for input_id in ids:
        assert f'for="{input_id}"' in html, input_id
    all_ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(all_ids) == len(set(all_ids))  # no duplicate ids
    assert html.count('name="csrf_token"') >= 3


def test_register_a_business(app, boss):
    client = signed_in(app, "boss")
    resp = client.post(PAGE, data={"csrf_token": csrf(client), "uscc": TENCENT.lower(), "name": "腾讯科技（深圳）有限公司"})
    assert resp.status_code == 303 and resp.location == PAGE
    html = client.get(PAGE).get_data(as_text=True)
    assert "is registered; you are its legal representative" in html and TENCENT in html
    assert db.session.execute(select(Business.uscc)).scalar() == TENCENT


def test_wrong_code_is_refused_with_the_reason_and_the_input_kept(app, boss):
    client = signed_in(app, "boss")
    resp = client.post(PAGE, data={"csrf_token": csrf(client), "uscc": "9144030071526726XA", "name": "腾讯"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert re.search(r'role="alert">[^<]*check character should be G, not A', html)
    assert 'value="9144030071526726XA"' in html
    assert db.session.execute(select(Business)).first() is None


def test_unverified_person_is_told_to_verify_first(app):
    citizen("plain")
    client = signed_in(app, "plain")
    html = client.get(PAGE).get_data(as_text=True)
    assert "service counter" in html and 'name="uscc"' not in html
    token = form_fields(client.get("/login").get_data(as_text=True))["csrf_token"]
    resp = client.post(PAGE, data={"csrf_token": token, "uscc": TENCENT, "name": "腾讯"})
    assert resp.status_code == 403 and "real name has been verified" in resp.get_data(as_text=True)


def test_agent_lifecycle_through_the_pages(app, boss, clerk, business):
    owner = signed_in(app, "boss")
    until = date.today() + timedelta(days=30)
    resp = owner.post(PAGE + "/agents", data={"csrf_token": csrf(owner), "business": business.public_id,
                                              "username": "clerk", "valid_until": until.isoformat()})
    assert resp.status_code == 303
    assert "waiting for confirmation" in owner.get(PAGE).get_data(as_text=True)

    agent = signed_in(app, "clerk")
    html = agent.get(PAGE).get_data(as_text=True)
    assert "authorizes you as its agent" in html and until.isoformat() in html
    rep_id = db.session.execute(select(Representation.id).where(Representation.role == "agent")).scalar()
    resp = agent.post(f"{PAGE}/representations/{rep_id}/confirm", data={"csrf_token": csrf(agent)})
    assert resp.status_code == 303
    html = agent.get(PAGE).get_data(as_text=True)
    assert "Businesses I act for as an agent" in html and "腾讯科技（深圳）有限公司" in html

    # the agent cannot revoke, a stranger cannot see it; the representative revokes
    assert agent.post(f"{PAGE}/representations/{rep_id}/revoke", data={"csrf_token": csrf(agent)}).status_code == 404
    resp = owner.post(f"{PAGE}/representations/{rep_id}/revoke", data={"csrf_token": csrf(owner)})
    assert resp.status_code == 303 and "The authorization is revoked." in owner.get(PAGE).get_data(as_text=True)
    assert [a for a in audit_actions() if a.startswith("representation.")] == [
        "representation.granted", "representation.confirmed", "representation.revoked"]


def test_agent_form_errors(app, boss, clerk, business):
    owner = signed_in(app, "boss")
    resp = owner.post(PAGE + "/agents", data={"csrf_token": csrf(owner), "business": business.public_id,
                                              "username": "nobody"})
    assert resp.status_code == 404 and "no active account" in resp.get_data(as_text=True)
    resp = owner.post(PAGE + "/agents", data={"csrf_token": csrf(owner), "business": business.public_id,
                                              "username": "clerk", "valid_until": "not a date"})
    assert resp.status_code == 400 and 'aria-invalid="true"' in resp.get_data(as_text=True)
    resp = owner.post(PAGE + "/agents", data={"csrf_token": csrf(owner), "business": "someone-elses",
                                              "username": "clerk"})
    assert resp.status_code == 400  # not one of the businesses offered


def test_forms_need_the_csrf_token(app, boss, clerk, business):
    owner = signed_in(app, "boss")
    resp = owner.post(PAGE + "/agents", data={"business": business.public_id, "username": "clerk"})
    assert resp.status_code == 400
    assert owner.post("/account/act-as", data={"act_as": business.public_id}).status_code == 400
    assert db.session.execute(select(Representation).where(Representation.role == "agent")).first() is None


def test_act_as_switch_on_the_page(app, boss, business):
    owner = signed_in(app, "boss")
    html = owner.get(PAGE).get_data(as_text=True)
    assert 'name="act_as"' in html and "You act for yourself." in html
    resp = owner.post("/account/act-as", data={"csrf_token": csrf(owner), "act_as": business.public_id,
                                               "next": PAGE})
    assert resp.status_code == 303 and resp.location == PAGE
    assert "you act for 腾讯科技（深圳）有限公司" in owner.get(PAGE).get_data(as_text=True)
    resp = owner.post("/account/act-as", data={"csrf_token": csrf(owner), "act_as": "self", "next": "https://evil.example/"})
    assert resp.status_code == 303 and resp.location == "/"  # never an open redirect
    assert "You act for yourself." in owner.get(PAGE).get_data(as_text=True)
    assert audit_actions().count("representation.acting_changed") == 2
