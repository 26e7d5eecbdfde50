"""Progressive delays, then a temporary lock, with the unlock time in the message (NIST SP 800-63B
§5.2.2 "Rate Limiting (Throttling)": waiting periods that grow, then a lock; OWASP ASVS 4.0.3
§2.2.1). Keys are keyed hashes shared by every node (database rows)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from idp.audit.models import AuditEvent
from idp.authn import throttle
from idp.authn.models import LoginThrottle
from idp.db import transaction, utcnow
from tests.conftest import PASSWORD
from tests.authn.support import let_delays_pass


@pytest.fixture
def en(client):
    client.set_cookie("idp_lang", "en")
    return client


def _fail(browser):
    return browser.login("alice", "wrong password!")


def test_after_three_failures_each_attempt_waits_two_to_the_n_seconds(app, en, browser, user):
    for _ in range(3):
        assert _fail(browser).status_code == 200
    early = browser.login("alice", PASSWORD)  # even the right password must wait
    text = early.get_data(as_text=True)
    assert early.status_code == 429 and re.search(r"Beijing time \(in [78] seconds\)", text), text
    let_delays_pass(8)
    assert _fail(browser).status_code == 200  # the 4th failure: 2^4 = 16 s
    assert re.search(r"\(in 1[56] seconds\)", browser.login("alice", PASSWORD).get_data(as_text=True))
    let_delays_pass(16)
    assert _fail(browser).status_code == 200  # the 5th: locked for 15 minutes
    locked = browser.login("alice", PASSWORD).get_data(as_text=True)
    assert "(in 15 minutes)" in locked
    delays = AuditEvent.query.filter_by(action="login.delayed").all()
    assert [e.detail["seconds"] for e in delays] == [8, 16]
    assert AuditEvent.query.filter_by(action="login.throttled", outcome="locked").count() == 1


def test_the_message_states_the_unlock_time_in_beijing_time(app, en, browser, user):
    for _ in range(3):
        _fail(browser)
    until = LoginThrottle.query.filter(LoginThrottle.key.startswith("name:")).one().locked_until
    local = until.replace(tzinfo=timezone.utc).astimezone(timezone(timedelta(hours=8)))
    text = browser.login("alice", PASSWORD).get_data(as_text=True)
    shown = f"{local:%H:%M:%S}" if local.date() == datetime.now(timezone(timedelta(hours=8))).date() \
        else f"{local:%Y-%m-%d %H:%M:%S}"
    assert f"You can try again at {shown} Beijing time" in text


def test_the_message_is_chinese_by_default(app, client, browser, user):
    for _ in range(3):
        _fail(browser)
    text = browser.login("alice", PASSWORD).get_data(as_text=True)
    assert re.search(r"失败次数过多。请于北京时间 [\d:\- ]+（\d+ 秒后）再试。", text), text


def test_an_address_is_not_slowed_down_only_locked_at_its_limit(app, en, browser, user):
    """Many people share one address: failures under different names never delay the address."""
    for i in range(10):
        assert browser.login(f"name{i}", "wrong password!").status_code == 200
    ip_rows = [r for r in LoginThrottle.query if r.key.startswith("ip:")]
    assert len(ip_rows) == 1 and ip_rows[0].failures == 10 and ip_rows[0].locked_until is None
    assert browser.login("alice", PASSWORD).status_code == 303


def test_keys_are_keyed_hashes_of_names_and_addresses(app, browser, user):
    _fail(browser)
    keys = [row.key for row in LoginThrottle.query]
    assert sorted(k.split(":")[0] for k in keys) == ["ip", "name"]
    assert all(re.fullmatch(r"[a-z-]+:[0-9a-f]{64}", k) for k in keys)
    assert not any("127.0.0.1" in k or "alice" in k for k in keys)


def test_the_functions_the_login_and_second_factor_use_keep_working(app):
    """keys_for / check / record_failure / clear_name: the interface of authn.service and TOTP."""
    with app.test_request_context("/login?lang=en", environ_base={"REMOTE_ADDR": "192.0.2.1"}):
        keys = throttle.keys_for("Alice ")
        assert keys == throttle.keys_for("alice") and sorted(keys.values()) == [5, 50]
        throttle.check(keys)
        with transaction():
            for _ in range(3):
                throttle.record_failure(keys)
        with pytest.raises(throttle.Throttled) as refused:
            throttle.check(keys)
        assert refused.value.status == 429 and refused.value.until > utcnow()
        throttle.clear_name(keys)
        rows = {r.key.split(":")[0] for r in LoginThrottle.query}
        assert rows == {"ip"}
        # a key of another part (e.g. a second factor) is an account key: delayed, then locked
        other = {"totp:abc": 5}
        with transaction():
            for _ in range(5):
                throttle.record_failure(other)
        with pytest.raises(throttle.Throttled, match="15 minutes"):
            throttle.check(other)


def test_code_requests_count_per_destination_with_their_own_window(app):
    with app.test_request_context("/register?lang=en"):
        keys = throttle.keys_for_scope("code", "phone:13900139000")
        assert sorted(k.split(":")[0] for k in keys) == ["code", "code-ip"]
        with transaction():
            for _ in range(5):
                throttle.record_failure(keys)
        with pytest.raises(throttle.Throttled, match=r"Too many codes were requested.*\(in 60 minutes\)"):
            throttle.check(keys)
