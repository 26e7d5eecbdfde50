"""Password reset by a verified channel (/reset): a code to the account's registered phone or email,
a new password, every session of the person ended (OWASP ASVS 4.0.3 V2.5; NIST SP 800-63B §6.1.2.3
"re-binding"), and the same answers whether or not an account matched (no user enumeration)."""
from __future__ import annotations

from idp.audit.models import AuditEvent
from idp.authn.models import VerificationCode
from idp.sessions.models import SsoSession
from tests.conftest import PASSWORD, Browser
from tests.portal.support import code_sent_to, finish_reset, messages_to, request_reset

NEW = "new plum blossom 42"


def test_reset_by_username_ends_every_session_and_the_new_password_works(app, client, user):
    devices = [app.test_client() for _ in range(2)]
    for device in devices:
        assert Browser(device).login().status_code == 303
    assert SsoSession.query.filter_by(ended_at=None).count() == 2
    client.set_cookie("idp_lang", "en")
    assert request_reset(client, "alice").location == "/reset/verify"
    [sms] = messages_to(app, "13800138000")
    assert "reset your password" in sms["body"]
    done = finish_reset(client, code_sent_to(app, "13800138000"))
    assert done.status_code == 303 and done.location == "/reset/done"
    assert SsoSession.query.filter_by(ended_at=None).count() == 0
    assert {s.end_reason for s in SsoSession.query} == {"password_reset"}
    assert devices[0].get("/account").status_code == 303  # signed out there
    assert Browser(app.test_client()).login(password=PASSWORD).status_code == 200  # the old one fails
    assert Browser(app.test_client()).login(password=NEW).status_code == 303
    event = AuditEvent.query.filter_by(action="password.reset").one()
    assert event.detail == {"channel": "phone", "sessions_ended": 2}
    assert user.password_changed_at is not None


def test_reset_by_phone_or_id_number_reaches_the_same_account(app, client, user):
    request_reset(client, "11010519491231002x")  # lower-case x is the same ID number
    assert finish_reset(client, code_sent_to(app, "13800138000")).status_code == 303


def test_reset_goes_to_the_email_when_there_is_no_phone(app, client):
    from idp.accounts.service import create_citizen

    create_citizen(username="bob", password=PASSWORD, email="bob@example.cn")
    request_reset(client, "bob")
    [mail] = messages_to(app, "bob@example.cn")
    assert mail["channel"] == "email" and mail["subject"] == "您的密码重置验证码"
    assert finish_reset(client, code_sent_to(app, "bob@example.cn")).status_code == 303


def test_the_new_password_must_pass_the_policy_and_the_code_stays_usable(app, client, user):
    client.set_cookie("idp_lang", "en")
    request_reset(client, "alice")
    code = code_sent_to(app, "13800138000")
    refused = finish_reset(client, code, password="alice in wonderland")
    assert refused.status_code == 400 and "must not contain your username" in refused.get_data(as_text=True)
    refused = finish_reset(client, code, password="password123")
    assert "most common passwords" in refused.get_data(as_text=True) or "digits or symbols added" in \
        refused.get_data(as_text=True)
    assert VerificationCode.query.one().consumed_at is None
    assert finish_reset(client, code).status_code == 303


def test_a_code_for_registration_is_not_a_reset_code(app, client, user):
    """Codes are bound to their purpose: the digest covers purpose and destination."""
    from tests.portal.support import request_registration_code

    client.set_cookie("idp_lang", "en")
    request_registration_code(client, "13900139000")
    registration_code = code_sent_to(app, "13900139000")
    request_reset(client, "alice")
    page = finish_reset(client, registration_code)
    assert page.status_code == 400 and "The code is wrong" in page.get_data(as_text=True)


def test_step_two_without_step_one_goes_back(client):
    assert client.get("/reset/verify").location == "/reset"
