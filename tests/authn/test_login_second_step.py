"""The login's second step (DESIGN.md "Forms": ``otp`` after ``username``/``password`` when TOTP is
enrolled): no SSO session before the code, a short-lived pending login, wrong codes throttled,
recovery codes accepted; assurance per DESIGN.md "Assurance" and amr per RFC 8176."""
from __future__ import annotations

import time

from idp.accounts.models import Person
from idp.audit.models import AuditEvent
from idp.db import db
from idp.sessions.models import SsoSession
from tests.authn.support import let_delays_pass, clock, enroll, in_request, login_with_code  # noqa: F401
from tests.conftest import PASSWORD, form_fields


def _cookie(client):
    return client.get_cookie("idp_session")


def test_password_alone_signs_in_people_without_totp(app, browser, user):
    """RFC 8176 §2: ``pwd``; level 1."""
    resp = browser.login()
    assert resp.status_code == 303 and resp.location == "/"
    s = SsoSession.query.one()
    assert s.acr == "urn:idp:loa:1" and s.amr == ["pwd"]


def test_second_step_before_any_session(app, client, user, clock, in_request):
    """After the right password nothing is signed in until the code: no SSO session row, no cookie."""
    secret, _ = enroll(user, clock)
    page = client.get("/login?next=/account/sessions")
    first = client.post("/login", data={**form_fields(page.get_data(as_text=True)), "username": "alice",
                                        "password": PASSWORD})
    assert first.status_code == 303 and first.location == "/login/otp"
    assert SsoSession.query.count() == 0 and _cookie(client) is None
    step = client.get("/login/otp?lang=en").get_data(as_text=True)
    assert 'name="otp"' in step and 'autocomplete="one-time-code"' in step and 'name="csrf_token"' in step
    assert '<label for="otp">' in step

    wrong = client.post("/login/otp", data={**form_fields(step), "otp": "000000"})
    assert wrong.status_code == 200 and "That code is not right" in wrong.get_data(as_text=True)
    assert 'role="alert"' in wrong.get_data(as_text=True) and SsoSession.query.count() == 0

    ok = client.post("/login/otp", data={**form_fields(step), "otp": clock.code(secret)})
    assert ok.status_code == 303 and ok.location == "/account/sessions"
    s = SsoSession.query.one()
    assert s.amr == ["pwd", "otp", "mfa"] and s.acr == "urn:idp:loa:1"  # identity not verified: still level 1
    assert _cookie(client) is not None
    assert AuditEvent.query.filter_by(action="login.succeeded").one().detail == {"method": "pwd+totp"}


def test_verified_person_with_totp_signs_in_at_level_2(app, client, user, clock, in_request):
    """DESIGN.md "Assurance" level 2: verified real name and a second factor."""
    secret, _ = enroll(user, clock)
    user.level = 2
    db.session.commit()
    assert login_with_code(client, clock.code(secret)).status_code == 303
    s = SsoSession.query.one()
    assert s.acr == "urn:idp:loa:2" and s.amr == ["pwd", "otp", "mfa"]


def test_a_recovery_code_works_once_at_the_second_step(app, client, user, clock, in_request):
    _, codes = enroll(user, clock)
    assert login_with_code(client, codes[0]).status_code == 303
    client.delete_cookie("idp_session")  # signed out again
    again = login_with_code(client, codes[0])
    assert again.status_code == 200 and SsoSession.query.count() == 1


def test_a_code_used_at_login_cannot_be_used_again(app, client, user, clock, in_request):
    """RFC 6238 §5.2: the same code twice within its window is refused the second time."""
    secret, _ = enroll(user, clock)
    code = clock.code(secret)
    assert login_with_code(client, code).status_code == 303
    client.delete_cookie("idp_session")  # signed out again
    assert login_with_code(client, code).status_code == 200
    assert SsoSession.query.count() == 1


def test_wrong_codes_count_in_the_throttle(app, client, user, clock, in_request):
    """Guessing codes is limited like guessing passwords: after 5 wrong codes the right one is refused (429),
    even once the progressive delays between attempts have been waited out."""
    secret, _ = enroll(user, clock)
    for _ in range(5):
        assert login_with_code(client, "000000").status_code == 200
        let_delays_pass()
    locked = login_with_code(client, clock.code(secret))
    assert locked.status_code == 429 and SsoSession.query.count() == 0
    assert 'name="otp"' in locked.get_data(as_text=True)  # the form again, with the reason
    assert AuditEvent.query.filter_by(action="login.throttled").count() == 1
    assert AuditEvent.query.filter_by(action="mfa.failed").count() == 5


def test_the_pending_login_expires(app, client, user, clock, in_request):
    """The login waiting for its code lives ``MFA_PENDING_TTL`` (5 minutes); then it starts over."""
    secret, _ = enroll(user, clock)
    assert app.config["MFA_PENDING_TTL"] == 300
    page = client.get("/login?next=/account/security")
    client.post("/login", data={**form_fields(page.get_data(as_text=True)), "username": "alice", "password": PASSWORD})
    step = client.get("/login/otp").get_data(as_text=True)
    with client.session_transaction() as ui:
        ui["mfa_pending"] = {**ui["mfa_pending"], "exp": int(time.time()) - 1}
    late = client.post("/login/otp?lang=en", data={**form_fields(step), "otp": clock.code(secret)})
    body = late.get_data(as_text=True)
    assert late.status_code == 200 and 'name="username"' in body and "took too long" in body
    assert form_fields(body)["next"] == "/account/security"
    assert SsoSession.query.count() == 0


def test_second_step_without_a_pending_login_is_the_login_page(client):
    resp = client.get("/login/otp")
    assert resp.status_code == 200 and 'name="username"' in resp.get_data(as_text=True)


def test_a_disabled_account_cannot_finish_its_pending_login(app, client, user, clock, in_request):
    secret, _ = enroll(user, clock)
    page = client.get("/login")
    client.post("/login", data={**form_fields(page.get_data(as_text=True)), "username": "alice", "password": PASSWORD})
    step = client.get("/login/otp").get_data(as_text=True)
    db.session.get(Person, user.id).status = "disabled"
    db.session.commit()
    resp = client.post("/login/otp", data={**form_fields(step), "otp": clock.code(secret)})
    assert 'name="username"' in resp.get_data(as_text=True) and SsoSession.query.count() == 0


def test_login_page_links_to_registration_and_password_reset(client):
    en = client.get("/login?lang=en").get_data(as_text=True)
    assert 'href="/register"' in en and 'href="/reset"' in en and "Forgot password?" in en
    zh = client.get("/login?lang=zh").get_data(as_text=True)
    assert "忘记密码？" in zh and "注册" in zh and "用户名 / 手机号 / 身份证号" in zh


def test_login_errors_are_translated(app, browser, user, client):
    resp = browser.login(password="wrong password!")
    assert "用户名或密码错误。" in resp.get_data(as_text=True)
    client.get("/?lang=en")
    resp = browser.login(password="wrong password!")
    assert "Wrong username or password." in resp.get_data(as_text=True)
