"""Self-registration (/register): a one-time code proves a phone or email, then the account is created
and the person signed in. No user enumeration (OWASP ASVS 4.0.3 V2.2/V3; NIST SP 800-63B §5.1.3.2
for the code). Codes are read from the development outbox, as a developer would."""
from __future__ import annotations

import re

from idp.accounts.models import Person
from idp.audit.models import AuditEvent
from idp.authn.models import VerificationCode
from idp.db import db
from idp.sessions.models import SsoSession
from tests.conftest import PASSWORD
from tests.portal.support import (
    code_sent_to,
    finish_registration,
    let_delays_pass,
    messages_to,
    post_form,
    request_registration_code,
)


def test_register_with_a_phone_and_land_signed_in_on_the_account_page(app, client):
    client.set_cookie("idp_lang", "en")
    sent = request_registration_code(client, "139 0013 9000")  # spaces are fine
    assert sent.status_code == 303 and sent.location == "/register/verify"
    page = client.get("/register/verify").get_data(as_text=True)
    assert "If 139****9000 can receive messages, we have sent a 6-digit code to it" in page
    [sms] = messages_to(app, "13900139000")
    assert sms["channel"] == "sms" and sms["body"].startswith("[Benxi City Identity]")
    done = finish_registration(client, code_sent_to(app, "13900139000"))
    assert done.status_code == 303 and done.location == "/account", done.get_data(as_text=True)
    person = Person.query.filter_by(username="wangwu").one()
    assert person.phone_verified and not person.email_verified and person.name == "王五" and person.level == 1
    session = SsoSession.query.filter_by(person_id=person.id).one()
    assert session.acr == "urn:idp:loa:1" and session.amr == ["pwd"]
    account = client.get("/account").get_data(as_text=True)
    assert "2105**********123X" in account and "139****9000" in account and "wangwu" in account
    assert "21050219850118123X" not in account and "13900139000" not in account
    actions = [e.action for e in AuditEvent.query.order_by(AuditEvent.id)]
    assert {"registration.code_requested", "account.created", "login.succeeded", "session.started"} <= set(actions)
    assert VerificationCode.query.one().consumed_at is not None  # used once


def test_register_with_an_email_address(app, client):
    request_registration_code(client, "Wang.Wu@Example.CN")
    [mail] = messages_to(app, "wang.wu@example.cn")
    assert mail["channel"] == "email" and mail["subject"] == "您的注册验证码"  # Chinese by default
    assert finish_registration(client, code_sent_to(app, "wang.wu@example.cn")).status_code == 303
    person = Person.query.filter_by(username="wangwu").one()
    assert person.email_verified and not person.phone_verified and person.phone_enc is None


def test_the_code_can_be_used_once(app, client):
    """Two browsers holding the same code (the second request came within the cooldown): one account."""
    other = app.test_client()
    request_registration_code(client, "13900139000")
    request_registration_code(other, "13900139000")
    assert len(messages_to(app, "13900139000")) == 1
    code = code_sent_to(app, "13900139000")
    assert finish_registration(client, code).status_code == 303
    other.set_cookie("idp_lang", "en")
    again = finish_registration(other, code, username="zhaoliu", id_number="210502199001011239")
    assert again.status_code == 400 and "expired or was already used" in again.get_data(as_text=True)
    assert Person.query.count() == 1


def test_a_wrong_id_number_is_refused_with_its_reason_and_costs_no_try(app, client):
    """GB 11643-1999: the check character (ISO 7064 MOD 11-2) is named in the refusal."""
    request_registration_code(client, "13900139000")
    code = code_sent_to(app, "13900139000")
    zh = finish_registration(client, code, id_number="210502198501181231")
    assert zh.status_code == 400 and "校验码应为 X，而不是 1" in zh.get_data(as_text=True)
    client.set_cookie("idp_lang", "en")
    en = finish_registration(client, code, id_number="21050219850230123X")
    assert "the date of birth 19850230 is not a valid date" in en.get_data(as_text=True)
    assert 'role="alert" id="id_number-error"' in en.get_data(as_text=True)
    assert VerificationCode.query.one().attempts == 0
    assert finish_registration(client, code).status_code == 303


def test_weak_passwords_are_refused_with_a_clear_reason(app, client):
    client.set_cookie("idp_lang", "en")
    request_registration_code(client, "13900139000")
    code = code_sent_to(app, "13900139000")
    for password, reason in [("qwertyuiop", "most common passwords"), ("password2024!", "digits or symbols added"),
                             ("wangwu-loves-tea", "username"), ("tea 19850118 tea", "ID number"),
                             ("i love benxi city", "benxi"), ("short", "at least 10 characters")]:
        page = finish_registration(client, code, password=password).get_data(as_text=True)
        assert reason in page, (password, page)
    mismatch = post_form(client, "/register/verify", code=code, username="wangwu", password="plum blossom river 9",
                         password_confirm="plum blossom river 8", name="王五", id_number="21050219850118123X")
    assert "The two passwords differ" in mismatch.get_data(as_text=True)
    long_passphrase = "风吹稻花香两岸 " * 9 + "and some more words"  # ≥ 64 characters are welcome
    assert finish_registration(client, code, password=long_passphrase).status_code == 303


def test_wrong_codes_then_the_code_is_dead(app, client):
    """At most 5 tries per code (VERIFICATION_MAX_ATTEMPTS)."""
    client.set_cookie("idp_lang", "en")
    request_registration_code(client, "13900139000")
    right = code_sent_to(app, "13900139000")
    wrong = f"{(int(right) + 1) % 10 ** 6:06d}"
    let_delays_pass()
    for attempt in range(5):
        let_delays_pass()
        page = finish_registration(client, wrong).get_data(as_text=True)
        assert "The code is wrong" in page, page
    let_delays_pass()
    dead = finish_registration(client, right).get_data(as_text=True)
    assert "Too many wrong codes" in dead
    assert Person.query.count() == 0
    assert AuditEvent.query.filter_by(action="verification.failed").count() == 5


def test_a_new_code_only_after_the_cooldown_and_it_replaces_the_old_one(app, client):
    from datetime import timedelta

    client.set_cookie("idp_lang", "en")
    request_registration_code(client, "13900139000")
    first = code_sent_to(app, "13900139000")
    again = client.post("/register/resend", data={"csrf_token": _csrf(client)})
    assert again.status_code == 303
    assert "A code was sent less than a minute ago" in client.get("/register/verify").get_data(as_text=True)
    assert len(messages_to(app, "13900139000")) == 1  # nothing new within the cooldown
    for row in VerificationCode.query:
        row.created_at -= timedelta(seconds=61)
    db.session.commit()
    client.post("/register/resend", data={"csrf_token": _csrf(client)})
    second = code_sent_to(app, "13900139000")
    assert len(messages_to(app, "13900139000")) == 2
    if second != first:  # the first code died with the new one
        assert "The code is wrong" in finish_registration(client, first).get_data(as_text=True)
    assert finish_registration(client, second).status_code == 303


def _csrf(client):
    html = client.get("/register/verify").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def test_one_account_per_id_number_and_its_owner_is_told(app, client, user):
    client.set_cookie("idp_lang", "en")
    request_registration_code(client, "13900139000")
    page = finish_registration(client, code_sent_to(app, "13900139000"), id_number="11010519491231002X")
    assert page.status_code == 409 and "An account with this ID number already exists" in page.get_data(as_text=True)
    assert Person.query.count() == 1
    [warning] = messages_to(app, "13800138000")  # alice's phone
    assert "resident ID number" in warning["body"] and not re.search(r"\d{6}", warning["body"].split("]")[1])
    # the code is used up: every such answer costs a proven phone
    assert "expired or was already used" in finish_registration(client, "000000").get_data(as_text=True)


def test_too_many_code_requests_are_refused_with_the_unlock_time(app, client):
    """Per destination: CODE_MAX_REQUESTS (5) per hour, then a lock of an hour."""
    client.set_cookie("idp_lang", "en")
    for _ in range(5):
        let_delays_pass()  # from the third request on, each must wait 2^n seconds first
        assert request_registration_code(client, "13900139000").status_code == 303
    let_delays_pass()
    refused = request_registration_code(client, "13900139000")
    text = refused.get_data(as_text=True)
    assert refused.status_code == 429
    assert "Too many codes were requested. You can request another one at" in text and "(in 60 minutes)" in text
    assert AuditEvent.query.filter_by(action="code.throttled", outcome="locked").count() == 1
    assert request_registration_code(client, "13900139001").status_code == 303  # another destination


def test_bad_destinations_are_explained(client):
    client.set_cookie("idp_lang", "en")
    for bad in ("12345", "23800138000", "not an address", "a@b"):
        page = request_registration_code(client, bad)
        assert page.status_code == 400 and "11 digits starting with 1" in page.get_data(as_text=True)


def test_step_two_without_step_one_goes_back_to_step_one(client):
    assert client.get("/register/verify").location == "/register"


def test_registration_pages_are_accessible_forms(client):
    html = client.get("/register").get_data(as_text=True)
    assert '<label for="destination">' in html and 'aria-describedby="destination-hint"' in html
    assert 'name="csrf_token"' in html


def test_the_code_and_the_phone_are_not_stored_in_clear(app, client):
    request_registration_code(client, "13900139000")
    code = code_sent_to(app, "13900139000")
    row = VerificationCode.query.one()
    stored = " ".join(str(v) for v in (row.destination_index, row.destination_enc, row.code_digest))
    assert code not in stored and "13900139000" not in stored
    assert row.expires_at - row.created_at == __import__("datetime").timedelta(minutes=10)


def test_registered_person_can_sign_in_with_the_new_password(app, client, browser):
    request_registration_code(client, "13900139000")
    finish_registration(client, code_sent_to(app, "13900139000"))
    fresh = app.test_client()
    from tests.conftest import Browser

    assert Browser(fresh).login("13900139000", "plum blossom river 9").status_code == 303
    assert PASSWORD  # the fixture user is not involved
