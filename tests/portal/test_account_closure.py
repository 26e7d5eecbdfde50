"""Closing an account (账号注销, GB/T 35273-2020 §8.5; PIPL art. 47): on /account/close with the
password (and the second factor when there is one), or by an operator (``idp users close``). The
person is signed out everywhere (Back-Channel Logout 1.0 §2.4), every token revoked (RFC 7662 §2.2:
inactive), the personal data erased and the identifiers free to register again; the ``sub`` and the
records the law keeps remain."""
from __future__ import annotations

import json

import pytest

from idp.accounts.models import Person
from idp.audit.models import AuditEvent
from idp.db import db
from idp.oauth.models import Consent
from idp.sessions.models import LogoutDelivery, SsoSession
from tests.authn.support import clock, enroll  # noqa: F401
from tests.conftest import PASSWORD, Browser, basic, exchange, make_rp
from tests.portal.support import messages_to, post_form


def _signed_in_at_a_subsite(app, client):
    """alice signed in at a third-party subsite (consent given) with an offline_access grant."""
    rp = make_rp(app, redirect_uri="https://rp.example.cn/cb", backchannel_logout_uri="https://rp.example.cn/bc",
                 scopes=["openid", "profile", "offline_access"])
    code, verifier, _ = Browser(client).code(rp, scope="openid profile offline_access", extra={"prompt": "consent"})
    tokens = exchange(client, rp, code, verifier).get_json()
    assert "refresh_token" in tokens
    return rp, tokens


def test_closing_the_account_signs_out_everywhere_and_erases_the_personal_data(app, client, user):
    rp, tokens = _signed_in_at_a_subsite(app, client)
    assert Consent.query.filter_by(person_id=user.id).count() == 1
    sub, sid = user.sub, SsoSession.query.filter_by(person_id=user.id).one().sid

    page = client.get("/account/close?lang=en")
    assert page.status_code == 200 and "cannot be undone" in page.get_data(as_text=True)
    assert "注销账号" in client.get("/account/close?lang=zh").get_data(as_text=True)
    wrong = post_form(client, "/account/close", password="not the password")
    assert wrong.status_code == 400 and 'role="alert"' in wrong.get_data(as_text=True)
    assert db.session.get(Person, user.id).status == "active"

    done = post_form(client, "/account/close", password=PASSWORD)
    html = done.get_data(as_text=True)
    assert done.status_code == 200 and "账号已注销" in html
    assert "idp_session=;" in done.headers.get("Set-Cookie", "") or client.get_cookie("idp_session") is None

    db.session.expire_all()
    person = db.session.get(Person, user.id)
    assert person.status == "closed" and person.sub == sub and person.username != "alice"
    assert (person.name, person.id_number_enc, person.id_number_index, person.phone_enc, person.phone_index,
            person.email_enc, person.email_index, person.password_hash) == (None,) * 8
    assert Consent.query.filter_by(person_id=user.id).count() == 0
    assert SsoSession.query.filter_by(sid=sid).one().end_reason == "account_closed"
    assert LogoutDelivery.query.filter_by(sid=sid, client_id=rp["client_id"]).count() == 1
    for value in (tokens["access_token"], tokens["refresh_token"]):
        assert client.post("/introspect", data={"token": value}, headers=basic(rp)).get_json() == {"active": False}
    event = AuditEvent.query.filter_by(action="account.closed").one()
    assert event.actor == f"person:{sub}" and event.detail == {
        "tokens_revoked": 1, "consents_deleted": 1, "authorizations_ended": 0, "sessions_ended": 1}
    assert "alice" not in json.dumps(event.detail) and "张三" not in json.dumps(event.detail)

    # told at the phone the account had (read before it was erased)
    sent = messages_to(app, "13800138000")
    assert any("closed" in m["body"] or "已注销" in m["body"] for m in sent), sent  # the page's language
    # the old credentials sign in nobody; the username, phone and ID number can be registered again
    assert Browser(app.test_client()).login().status_code != 303
    from idp.accounts.service import create_citizen

    again = create_citizen(username="alice", password=PASSWORD, name="张三", phone="13800138000",
                           email="alice@example.cn", id_number="11010519491231002X")
    assert again.sub != sub


def test_with_two_step_verification_the_code_is_needed_too(app, client, user, clock):
    from tests.authn.support import login_with_code

    with app.test_request_context("/"):
        secret, _ = enroll(user, clock)
    assert login_with_code(client, clock.code(secret)).status_code == 303
    clock.tick()
    missing = post_form(client, "/account/close", password=PASSWORD)
    assert missing.status_code == 400 and db.session.get(Person, user.id).status == "active"
    wrong = post_form(client, "/account/close", password=PASSWORD, otp="000000")
    assert wrong.status_code == 400 and db.session.get(Person, user.id).status == "active"
    assert AuditEvent.query.filter_by(action="mfa.failed").count() == 1
    done = post_form(client, "/account/close", password=PASSWORD, otp=clock.code(secret))
    assert done.status_code == 200
    db.session.expire_all()
    assert db.session.get(Person, user.id).status == "closed"
    from idp.authn.models import RecoveryCode, TotpCredential

    assert TotpCredential.query.filter_by(person_id=user.id).count() == 0
    assert RecoveryCode.query.filter_by(person_id=user.id).count() == 0


def test_a_legal_representative_or_an_official_is_told_what_to_do_first(app, client, user):
    from idp.accounts.businesses import register_business
    from idp.db import transaction, utcnow
    from tests.accounts.support import TENCENT

    with transaction():
        user.level, user.identity_verified_at, user.identity_method = 2, utcnow(), "counter"
    register_business(representative=user, uscc=TENCENT, name="腾讯科技（深圳）有限公司")
    Browser(client).login()
    page = client.get("/account/close?lang=en").get_data(as_text=True)
    assert "legal representative of 腾讯科技（深圳）有限公司" in page and 'name="password"' not in page
    # a POST anyway (with a valid CSRF token from another form) changes nothing
    refused = post_form(client, "/account/password", action="/account/close", password=PASSWORD)
    assert refused.status_code == 200 and "legal representative" in refused.get_data(as_text=True)
    assert db.session.get(Person, user.id).status == "active"


def test_an_operator_closes_an_account_on_request(app, client, runner, user):
    _signed_in_at_a_subsite(app, client)
    r = runner.invoke(args=["users", "close", "alice"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out == {"sub": user.sub, "status": "closed", "tokens_revoked": 1, "consents_deleted": 1,
                   "authorizations_ended": 0, "sessions_ended": 1}
    assert AuditEvent.query.filter_by(action="account.closed").one().actor == "cli"
    again = runner.invoke(args=["users", "close", "alice"])
    assert again.exit_code != 0 and "no account 'alice'" in again.output and "Traceback" not in again.output


@pytest.mark.parametrize("path", ["/account/close", "/account/data"])
def test_the_page_needs_a_session(client, path):
    resp = client.get(path)
    assert resp.status_code == 303 and resp.location.startswith("/login")


def test_an_official_is_told_to_leave_the_department_first(app, client, runner, user):
    from idp.accounts.officials import add_official, create_department, remove_official

    create_department(code="scjgj", name="市场监督管理局")
    add_official(username="alice", department="scjgj")
    Browser(client).login()
    assert "Your department removes your membership" in client.get("/account/close?lang=en").get_data(as_text=True)
    r = runner.invoke(args=["users", "close", "alice"])
    assert r.exit_code != 0 and "official's account" in r.output and "Traceback" not in r.output
    remove_official(username="alice", department="scjgj")
    assert 'name="password"' in client.get("/account/close").get_data(as_text=True)
    assert runner.invoke(args=["users", "close", "alice"]).exit_code == 0


def test_a_copy_of_my_data_after_confirming_it_is_me(app, client, user):
    """PIPL art. 45: the person downloads what the hub holds about them, identifiers in full, only after
    re-authenticating; the download is audited; nothing of it is cached (RFC 9111 ``no-store``)."""
    rp, _ = _signed_in_at_a_subsite(app, client)
    page = client.get("/account/data?lang=en")
    assert page.status_code == 200 and "keep it safe" in page.get_data(as_text=True)
    wrong = post_form(client, "/account/data", password="not the password")
    assert wrong.status_code == 400 and wrong.mimetype == "text/html"
    assert AuditEvent.query.filter_by(action="account.copy_failed").count() == 1
    got = post_form(client, "/account/data", password=PASSWORD)
    assert got.status_code == 200 and got.mimetype == "application/json"
    assert got.headers["Cache-Control"] == "no-store" and "attachment" in got.headers["Content-Disposition"]
    copy = json.loads(got.get_data(as_text=True))
    assert copy["account"]["id_number"] == "11010519491231002X" and copy["account"]["phone"] == "13800138000"
    assert copy["account"]["email"] == "alice@example.cn" and copy["account"]["name"] == "张三"
    assert [s["site"] for s in copy["sites_allowed"]] == ["测试子站"]
    assert copy["signed_in"] and copy["signed_in"][0]["sites"] == ["测试子站"]
    assert "login.succeeded" in [e["action"] for e in copy["activity"]]
    assert AuditEvent.query.filter_by(action="account.data_copied").one().actor == f"person:{user.sub}"
    sent = messages_to(app, "13800138000")  # the holder is told, in the page's language
    assert any("downloaded" in m["body"] or "副本" in m["body"] for m in sent), sent
    assert client.get("/account").status_code == 200  # still signed in
