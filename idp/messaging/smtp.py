"""Email through an SMTP relay (smtplib): STARTTLS (RFC 3207) or implicit TLS (RFC 8314), certificates
verified against the system's CAs plus an optional extra CA file; AUTH when a username is set.
``security="none"`` exists for a relay on the same host (production refuses it elsewhere)."""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr


class SmtpSender:
    def __init__(self, *, host: str, port: int, security: str, username: str, password: str, sender: str,
                 timeout: float, ca_file: str | None = None):
        self.host, self.port, self.security = host, int(port), security
        self.username, self.password, self.sender, self.timeout = username, password, sender, timeout
        self.context = ssl.create_default_context()
        if ca_file:
            self.context.load_verify_locations(cafile=ca_file)

    def message(self, to: str, subject: str, body: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(usegmt=True)
        domain = parseaddr(self.sender)[1].rpartition("@")[2] or None
        msg["Message-ID"] = make_msgid(domain=domain)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to one-time codes
        msg.set_content(body)
        return msg

    def send_email(self, to: str, subject: str, body: str) -> None:
        msg = self.message(to, subject, body)
        if self.security == "ssl":
            conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.context)
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with conn:
            if self.security == "starttls":
                conn.starttls(context=self.context)  # raises if the relay does not offer it: never falls back
            if self.username:
                conn.login(self.username, self.password)
            conn.send_message(msg)
