"""The nginx helper: under CI=true a missing nginx fails the test, elsewhere it is skipped; the shipped
configuration renders for a test (``nginx -t`` and the real proxy: tests/e2e/test_live_certificate_login.py)."""
from __future__ import annotations

import pytest
from _pytest.outcomes import Failed, Skipped

from tests.services import nginx


@pytest.mark.parametrize("ci, outcome", [("true", Failed), ("", Skipped)])
def test_missing_nginx_fails_under_ci_and_skips_elsewhere(monkeypatch, ci, outcome):
    monkeypatch.setattr(nginx, "find_nginx", lambda: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="apt-get install nginx"):
        nginx.require_nginx()


def test_the_shipped_configuration_forwards_the_certificate_only_on_certificate_login(tmp_path):
    text = nginx.render(1234, 5678, tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "k.pem", None)
    cert_forwarding = text.count("proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;")
    assert cert_forwarding == 2  # /login/certificate and the 495 error page that leads there
    assert 'proxy_set_header X-SSL-Client-Cert "";' in text and "ssl_verify_client optional;" in text
    assert "listen 127.0.0.1:1234 ssl;" in text and "server 127.0.0.1:5678;" in text
