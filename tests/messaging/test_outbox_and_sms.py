"""The development outbox (files a developer or a test can read) and the SMS provider interface."""
from __future__ import annotations

import json
import os
import stat

import pytest

from idp import create_app, messaging
from idp.config import ConfigError
from idp.messaging.outbox import read_outbox
from tests.conftest import _config

SENT: list[tuple] = []


class Gateway:
    """An SmsProvider as a deployment would write one (see idp/messaging/sms.py)."""

    def __init__(self, options: dict):
        self.options = options

    def send_sms(self, to: str, body: str) -> None:
        if to == "19900000000":
            raise ConnectionError(f"gateway refused {to}: {body}")
        SENT.append((self.options, to, body))


class NotAProvider:
    def __init__(self, options):
        pass


def test_outbox_writes_one_private_json_file_per_message(app):
    messaging.send_email("zhangsan@example.cn", "验证码", "您的验证码为 123456")
    messaging.send_sms("13800138000", "【本溪政务网】验证码 654321")
    files = sorted(os.listdir(app.config["OUTBOX_DIR"]))
    assert len(files) == 2 and all(f.endswith(".json") for f in files)
    assert all(stat.S_IMODE(os.stat(os.path.join(app.config["OUTBOX_DIR"], f)).st_mode) == 0o600 for f in files)
    email, sms = read_outbox(app.config["OUTBOX_DIR"])
    assert {k: email[k] for k in ("channel", "to", "subject", "body")} == {
        "channel": "email", "to": "zhangsan@example.cn", "subject": "验证码", "body": "您的验证码为 123456"}
    assert sms["channel"] == "sms" and sms["to"] == "13800138000" and "654321" in sms["body"] and sms["time"]
    with open(email["file"], encoding="utf-8") as fh:
        assert json.load(fh)["to"] == "zhangsan@example.cn"
    assert read_outbox(app.config["OUTBOX_DIR"], to="13800138000") == [sms]
    assert read_outbox(app.config["OUTBOX_DIR"], channel="email") == [email]


def test_send_later_delivers_off_the_request(app):
    messaging.send_later("sms", "13800138000", "code 111222")
    assert messaging.wait_idle(10)
    [sms] = read_outbox(app.config["OUTBOX_DIR"])
    assert sms["body"] == "code 111222"


def test_sms_goes_to_the_configured_provider(instance):
    SENT.clear()
    app = create_app(_config(instance, SMS_BACKEND="tests.messaging.test_outbox_and_sms:Gateway",
                             SMS_OPTIONS='{"account": "benxi", "signature": "本溪政务网"}'))
    with app.app_context():
        messaging.send_sms("13800138000", "code 222333")
    assert SENT == [({"account": "benxi", "signature": "本溪政务网"}, "13800138000", "code 222333")]
    assert read_outbox(app.config["OUTBOX_DIR"]) == []


def test_a_failing_provider_is_logged_without_number_or_text(instance, caplog):
    app = create_app(_config(instance, SMS_BACKEND="tests.messaging.test_outbox_and_sms.Gateway"))
    with app.app_context():
        with pytest.raises(messaging.DeliveryError):
            messaging.send_sms("19900000000", "code 333444")
        messaging.send_later("sms", "19900000000", "code 333444")
        assert messaging.wait_idle(10)
    assert "ConnectionError" in caplog.text
    assert "19900000000" not in caplog.text and "333444" not in caplog.text


@pytest.mark.parametrize("path", ["tests.messaging.no_such_module:Gateway",
                                  "tests.messaging.test_outbox_and_sms:Missing",
                                  "tests.messaging.test_outbox_and_sms:NotAProvider"])
def test_a_wrong_provider_stops_the_start(instance, path):
    with pytest.raises(ConfigError, match="IDP_SMS_BACKEND"):
        create_app(_config(instance, SMS_BACKEND=path))
