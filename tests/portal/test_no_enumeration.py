"""No user enumeration through registration or password reset (OWASP WSTG-IDNT-04 "Testing for
Account Enumeration"; OWASP Authentication Cheat Sheet, "Authentication and Error Messages"): the pages
answer the same for an identifier that has an account and one that has none; only the owner's phone
learns of the attempt. Timing: both paths do the same database work and send (if at all) off the request."""
from __future__ import annotations

import re
import time

from idp.authn.models import VerificationCode
from tests.conftest import Browser
from tests.portal.support import (
    code_sent_to,
    finish_registration,
    finish_reset,
    let_delays_pass,
    messages_to,
    page_skeleton,
    request_registration_code,
    request_reset,
)


def _flow(app, step1, step2_url, identifier, *masked):
    client = app.test_client()
    client.set_cookie("idp_lang", "en")
    first = step1(client, identifier)
    page = client.get(step2_url)
    return client, first, page_skeleton(page.get_data(as_text=True), *masked)


def test_registration_answers_alike_for_a_registered_and_a_new_phone(app, user):
    taken, taken_first, taken_page = _flow(app, request_registration_code, "/register/verify", "13800138000",
                                           "138****8000")
    new, new_first, new_page = _flow(app, request_registration_code, "/register/verify", "13900139000",
                                     "139****9000")
    assert (taken_first.status_code, taken_first.location) == (new_first.status_code, new_first.location)
    assert taken_page == new_page
    # what happens next is alike too: the code typed is "wrong" in both, with the same message
    wrong = f"{(int(code_sent_to(app, '13900139000')) + 1) % 10 ** 6:06d}"
    wrong_taken = finish_registration(taken, wrong, username="u1", id_number="210502199001011239")
    wrong_new = finish_registration(new, wrong, username="u1", id_number="210502199001011239")
    assert (wrong_taken.status_code, page_skeleton(wrong_taken.get_data(as_text=True), "138****8000")) == \
        (wrong_new.status_code, page_skeleton(wrong_new.get_data(as_text=True), "139****9000"))
    # the owner of the registered phone is told, with no code in the message
    [warning] = messages_to(app, "13800138000")
    assert "already belongs to an account" in warning["body"] and "/reset" in warning["body"]
    assert not re.search(r"\b\d{6}\b", warning["body"])


def test_registration_answers_alike_for_a_registered_and_a_new_email(app, user):
    _, first_a, page_a = _flow(app, request_registration_code, "/register/verify", "alice@example.cn", "a***@example.cn")
    _, first_b, page_b = _flow(app, request_registration_code, "/register/verify", "carol@example.cn", "c***@example.cn")
    assert (first_a.status_code, first_a.location) == (first_b.status_code, first_b.location)
    assert page_a == page_b
    assert "already belongs" in messages_to(app, "alice@example.cn")[0]["body"]


def test_reset_answers_alike_whether_or_not_an_account_matches(app, user):
    found, first_found, page_found = _flow(app, request_reset, "/reset/verify", "alice")
    none, first_none, page_none = _flow(app, request_reset, "/reset/verify", "nobody")
    assert (first_found.status_code, first_found.location) == (first_none.status_code, first_none.location)
    assert page_found == page_none
    assert "If an account matches what you entered" in page_none
    # the same rows were written (a stand-in code for "nobody"), and the same wrong-code answer follows
    assert VerificationCode.query.filter_by(purpose="reset").count() == 2
    wrong_found, wrong_none = finish_reset(found, "000000"), finish_reset(none, "000000")
    assert (wrong_found.status_code, page_skeleton(wrong_found.get_data(as_text=True))) == \
        (wrong_none.status_code, page_skeleton(wrong_none.get_data(as_text=True)))
    assert len(messages_to(app, "13800138000")) == 1  # only the real account got a message


def test_the_ui_session_reveals_nothing(app, user):
    """The browser's (signed, readable) UI cookie holds an encrypted ticket, not the code's row id."""
    import base64
    import zlib

    cookies = []
    for login in ("alice", "nobody"):
        client = app.test_client()
        request_reset(client, login)
        raw = client.get_cookie("idp_ui").value
        body = raw.lstrip(".").split(".")[0]
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        cookies.append(zlib.decompress(data) if raw.startswith(".") else data)
    for value in cookies:
        assert b"ticket" in value and b'"id"' not in value
        assert not re.search(rb'"ticket":\s*"?\d+"?[,}]', value)


def test_timing_is_alike(app, user):
    """Median response times of step 1 for a matching and a non-matching identifier stay close.
    Loose bound (the machine is shared); the point is that no path sends mail or hashes a password
    inside the request."""
    def median(login):
        times = []
        for i in range(7):
            client = app.test_client()
            start = time.perf_counter()
            request_reset(client, login if login != "nobody" else f"nobody{i}")
            times.append(time.perf_counter() - start)
            let_delays_pass(4000)
        return sorted(times)[3]

    found, none = median("alice"), median("nobody")
    assert abs(found - none) < max(0.05, 0.5 * min(found, none)), (found, none)


def test_login_still_answers_alike_for_unknown_names(app, user):
    a = Browser(app.test_client()).login("alice", "wrong password!!")
    b = Browser(app.test_client()).login("nobody", "wrong password!!")
    assert a.status_code == b.status_code == 200
    assert page_skeleton(a.get_data(as_text=True), "alice") == page_skeleton(b.get_data(as_text=True), "nobody")
