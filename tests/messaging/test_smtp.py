"""Email through a real SMTP server (aiosmtpd on 127.0.0.1): STARTTLS (RFC 3207), implicit TLS
(RFC 8314 §3.3), AUTH (RFC 4954) only over TLS, certificate verification, no silent downgrade."""
from __future__ import annotations

import pytest

from idp.messaging import DeliveryError, Message
from idp.messaging.smtp import SmtpSender
from tests.messaging import smtp_server

USER, SECRET = "idp-relay", "relay-secret-1"


@pytest.fixture
def tls_files(tmp_path):
    return smtp_server.make_tls_files(tmp_path)


@pytest.fixture
def mailbox():
    return smtp_server.Mailbox()


def _sender(controller, security, ca=None, username=USER, password=SECRET):
    return SmtpSender(host="127.0.0.1", port=controller.port, security=security, username=username,
                      password=password, sender="本溪政务网 <noreply@benxi.gov.cn>", timeout=10,
                      ca_file=str(ca) if ca else None)


def test_starttls_with_login_delivers_a_chinese_message(tls_files, mailbox):
    ca, cert, key = tls_files
    server = smtp_server.start(mailbox, tls_context=smtp_server.server_context(cert, key), require_starttls=True,
                               authenticator=smtp_server.check_login(USER, SECRET), auth_require_tls=True)
    try:
        _sender(server, "starttls", ca).send_email("zhangsan@example.cn", "验证码", "您的验证码为 123456。")
    finally:
        server.stop()
    [got] = mailbox.messages
    assert got.tls and got.login == USER
    assert got.rcpt_tos == ["zhangsan@example.cn"] and got.mail_from == "noreply@benxi.gov.cn"
    assert got.message["Subject"] == "验证码" and "123456" in got.message.get_content()
    assert got.message["Auto-Submitted"] == "auto-generated" and got.message["Message-ID"].endswith("@benxi.gov.cn>")


def test_implicit_tls(tls_files, mailbox):
    ca, cert, key = tls_files
    # auth_require_tls=False: aiosmtpd only knows about STARTTLS; this whole connection is TLS.
    server = smtp_server.start(mailbox, ssl_context=smtp_server.server_context(cert, key),
                               authenticator=smtp_server.check_login(USER, SECRET), auth_require_tls=False)
    try:
        _sender(server, "ssl", ca).send_email("a@example.cn", "Code", "Your code is 654321.")
    finally:
        server.stop()
    [got] = mailbox.messages
    assert got.login == USER and "654321" in got.message.get_content()
    assert got.message["From"] == "本溪政务网 <noreply@benxi.gov.cn>"


def test_an_untrusted_certificate_is_refused(tls_files, mailbox):
    """RFC 3207 §4.1: the client must check the server's identity; no CA file, no trust."""
    _, cert, key = tls_files
    server = smtp_server.start(mailbox, tls_context=smtp_server.server_context(cert, key), require_starttls=True)
    try:
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            _sender(server, "starttls", ca=None, username="").send_email("a@example.cn", "s", "b")
    finally:
        server.stop()
    assert mailbox.messages == []


def test_starttls_required_never_falls_back_to_plain_text(mailbox):
    """A relay (or a man in the middle) that does not offer STARTTLS gets nothing (RFC 3207 §6)."""
    server = smtp_server.start(mailbox)
    try:
        with pytest.raises(Exception, match="STARTTLS"):
            _sender(server, "starttls", username="").send_email("a@example.cn", "s", "b")
    finally:
        server.stop()
    assert mailbox.messages == []


def test_wrong_password_is_a_delivery_error_that_names_no_address(tls_files, mailbox, caplog):
    ca, cert, key = tls_files
    server = smtp_server.start(mailbox, tls_context=smtp_server.server_context(cert, key), require_starttls=True,
                               authenticator=smtp_server.check_login(USER, SECRET), auth_require_tls=True)
    from idp.messaging import Messenger

    messenger = Messenger(_sender(server, "starttls", ca, password="wrong"), sms=None)
    try:
        with pytest.raises(DeliveryError):
            messenger.send(Message("email", "secret.person@example.cn", "code 999111", "s"))
        messenger.send_later(Message("email", "secret.person@example.cn", "code 999111", "s"))
        assert messenger.wait_idle(10)
    finally:
        server.stop()
    assert mailbox.messages == []
    assert "SMTPAuthenticationError" in caplog.text
    assert "secret.person" not in caplog.text and "999111" not in caplog.text


def test_the_app_sends_through_the_configured_relay(instance, tls_files, mailbox):
    """IDP_EMAIL_BACKEND=smtp with the IDP_SMTP_* settings; ``send_email`` is the one entry point."""
    from idp import create_app, messaging
    from tests.conftest import _config

    ca, cert, key = tls_files
    server = smtp_server.start(mailbox, tls_context=smtp_server.server_context(cert, key), require_starttls=True,
                               authenticator=smtp_server.check_login(USER, SECRET), auth_require_tls=True)
    try:
        app = create_app(_config(instance, EMAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=server.port,
                                 SMTP_USERNAME=USER, SMTP_PASSWORD=SECRET, SMTP_FROM="noreply@benxi.gov.cn",
                                 SMTP_CA_FILE=str(ca)))
        with app.app_context():
            messaging.send_email("lisi@example.cn", "Your code", "123123")
    finally:
        server.stop()
    [got] = mailbox.messages
    assert got.rcpt_tos == ["lisi@example.cn"] and got.tls
