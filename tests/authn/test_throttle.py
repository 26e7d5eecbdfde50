"""Password guessing limits: per login name (counted whether or not the account exists) and per address."""
from __future__ import annotations

from datetime import timedelta

from idp.authn.models import LoginThrottle
from idp.db import db, utcnow
from tests.conftest import PASSWORD
from tests.authn.support import let_delays_pass


def _attempt(browser, username, password):
    # From the third failure on, each attempt must wait 2^n seconds first (progressive delay):
    # let that time pass, as a patient person would, before every attempt.
    let_delays_pass(20)
    return browser.login(username=username, password=password)


def test_five_failures_lock_the_name_even_for_the_right_password(app, browser, user):
    from idp.audit.models import AuditEvent

    browser.client.set_cookie("idp_lang", "en")  # messages are translated; read the English one
    for _ in range(5):
        assert _attempt(browser, "alice", "wrong password!").status_code == 200
    locked = _attempt(browser, "alice", PASSWORD)
    assert locked.status_code == 429 and "Too many failed attempts" in locked.get_data(as_text=True)
    assert "Beijing time (in 15 minutes)" in locked.get_data(as_text=True)
    assert b'name="username"' in locked.data  # the form again, with the reason
    assert AuditEvent.query.filter_by(action="login.throttled").count() == 1
    # the lock expires: the right password works again and clears the counter
    LoginThrottle.query.update({"locked_until": utcnow() - timedelta(seconds=1)})
    db.session.commit()
    assert _attempt(browser, "alice", PASSWORD).status_code == 303
    assert LoginThrottle.query.filter(LoginThrottle.key.startswith("name:")).count() == 0


def test_unknown_names_are_throttled_alike(app, browser, user):
    """A lockout must not reveal whether an account exists."""
    for _ in range(5):
        _attempt(browser, "nobody", "wrong password!")
    assert _attempt(browser, "nobody", "wrong password!").status_code == 429


def test_success_resets_the_name_counter(app, browser, user):
    for _ in range(4):
        _attempt(browser, "alice", "wrong password!")
    assert _attempt(browser, "alice", PASSWORD).status_code == 303
    for _ in range(4):
        _attempt(browser, "alice", "wrong password!")
    assert _attempt(browser, "alice", PASSWORD).status_code == 303


def test_throttle_rows_hold_no_login_name(app, browser, user):
    _attempt(browser, "alice", "wrong password!")
    keys = [row.key for row in LoginThrottle.query]
    assert keys and all("alice" not in k for k in keys)
