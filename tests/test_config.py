"""Configuration: IDP_* environment, and production refusing unsafe settings."""
from __future__ import annotations

import pytest

from idp import config
from idp.config import ConfigError

GOOD = {"ENV": "production", "SECRET_KEY": "k" * 40, "ISSUER": "https://id.benxi.gov.cn", "KEYS_PASSPHRASE": "pp",
        "EMAIL_BACKEND": "smtp", "SMTP_HOST": "mail.benxi.gov.cn", "SMTP_FROM": "noreply@benxi.gov.cn",
        "SMS_BACKEND": "benxi_sms.provider:Gateway"}


def test_environment_is_read(monkeypatch):
    monkeypatch.setenv("IDP_ISSUER", "https://id.example.cn/")
    monkeypatch.setenv("IDP_ACCESS_TOKEN_TTL", "300")
    cfg = config.load()
    assert cfg["ISSUER"] == "https://id.example.cn" and cfg["ACCESS_TOKEN_TTL"] == 300


def test_production_accepts_safe_settings():
    config.load(GOOD)


@pytest.mark.parametrize("bad, words", [
    ({"SECRET_KEY": config.DEV_SECRET_KEY}, "IDP_SECRET_KEY"),
    ({"SECRET_KEY": "short"}, "IDP_SECRET_KEY"),
    ({"ISSUER": "http://id.benxi.gov.cn"}, "http://"),
    ({"KEYS_PASSPHRASE": None}, "unencrypted"),
])
def test_production_refuses_unsafe_settings(bad, words):
    with pytest.raises(ConfigError, match=words):
        config.load({**GOOD, **bad})


@pytest.mark.parametrize("bad, words", [
    ({"EMAIL_BACKEND": "outbox"}, "outbox"),
    ({"SMS_BACKEND": "outbox"}, "outbox"),
    ({"SMTP_SECURITY": "none"}, "unencrypted"),
])
def test_production_refuses_the_outbox_and_plain_smtp(bad, words):
    with pytest.raises(ConfigError, match=words):
        config.load({**GOOD, **bad})


def test_production_may_use_the_outbox_when_explicitly_allowed():
    config.load({**GOOD, "EMAIL_BACKEND": "outbox", "SMS_BACKEND": "outbox", "ALLOW_OUTBOX_IN_PRODUCTION": "1"})
    config.load({**GOOD, "SMTP_SECURITY": "none", "SMTP_HOST": "127.0.0.1"})  # a relay on this host


@pytest.mark.parametrize("bad", [{"EMAIL_BACKEND": "sendmail"}, {"SMS_BACKEND": "not a path"},
                                 {"SMS_OPTIONS": "[1]"}, {"SMTP_SECURITY": "tls"},
                                 {"SMTP_HOST": ""}, {"SMTP_PORT": "smtp"}])
def test_malformed_messaging_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        config.load({**GOOD, **bad})


def test_production_allows_http_on_loopback():
    config.load({**GOOD, "ISSUER": "http://127.0.0.1:5000"})


@pytest.mark.parametrize("bad", [{"ISSUER": "ftp://x"}, {"ACCESS_TOKEN_TTL": "ten"}, {"ENV": "prod"},
                                 {"TRUSTED_PROXIES": "not-an-ip"}, {"ACCESS_TOKEN_ALG": "HS256"}])
def test_malformed_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        config.load(bad)


def test_cli_reports_config_error_in_one_line(tmp_path, monkeypatch):
    """A bad setting is a one-line message and a non-zero exit, not a trace."""
    import subprocess
    import sys
    from pathlib import Path

    env = {"IDP_ENV": "production", "IDP_KEYS_DIR": str(tmp_path / "k"), "PATH": "/usr/bin:/bin"}
    idp = Path(sys.executable).parent / "idp"
    out = subprocess.run([str(idp), "init"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and "refusing to start in production" in out.stderr
