"""Messages to people (one-time codes, notices) through pluggable senders.

``send_email(to, subject, body)`` and ``send_sms(to, body)`` hand a message to the configured
backend and return once it was accepted (or raise ``DeliveryError``). Web flows use
``send_later``: the message goes out on a short-lived thread, so a page answers in the same time
whether or not a message was sent (no user enumeration through timing) and a slow relay never holds
a request. Backends, chosen by configuration:

- email: ``outbox`` (development: one JSON file per message under ``IDP_OUTBOX_DIR``, see
  ``outbox.py``) or ``smtp`` (``smtp.py``: STARTTLS or implicit TLS, optional AUTH);
- SMS: ``outbox``, or any class implementing ``sms.SmsProvider``, named by its dotted path.

Nothing here logs an address, a code or a message body.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

from flask import Flask, current_app

from .outbox import Outbox
from .sms import SmsProvider, load_provider
from .smtp import SmtpSender

__all__ = ["DeliveryError", "Messenger", "SmsProvider", "init_app", "send_email", "send_later", "send_sms",
           "wait_idle"]

log = logging.getLogger(__name__)
_MAX_PARALLEL = 8


class DeliveryError(RuntimeError):
    """A backend did not accept a message (the reason is the exception it chains)."""


@dataclass(frozen=True)
class Message:
    channel: str  # "email" | "sms"
    to: str
    body: str
    subject: str = ""


class Messenger:
    """The configured backends of one application."""

    def __init__(self, email, sms: SmsProvider, background: bool = True):
        self.email, self.sms, self.background = email, sms, background
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(_MAX_PARALLEL)

    def send(self, message: Message) -> None:
        try:
            if message.channel == "email":
                self.email.send_email(message.to, message.subject, message.body)
            elif message.channel == "sms":
                self.sms.send_sms(message.to, message.body)
            else:
                raise ValueError(f"unknown channel {message.channel!r}")
        except Exception as exc:
            raise DeliveryError(f"{message.channel} delivery failed ({type(exc).__name__})") from exc

    def send_later(self, message: Message) -> None:
        """Deliver without making the caller wait or fail; failures are logged (without the address)."""
        if not self.background:
            self._deliver(message)
            return
        thread = threading.Thread(target=self._deliver_in_background, args=(message,), name="idp-messaging",
                                  daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait for messages handed to ``send_later``; True if none is still being sent."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = list(self._threads)
            if not pending:
                return True
            for thread in pending:
                thread.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                with self._lock:
                    return not self._threads

    def _deliver_in_background(self, message: Message) -> None:
        try:
            with self._slots:
                self._deliver(message)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _deliver(self, message: Message) -> None:
        try:
            self.send(message)
        except DeliveryError as exc:
            cause = exc.__cause__
            code = getattr(cause, "smtp_code", None)
            # The exception text may echo the recipient (e.g. an SMTP 550 reply): log only its kind.
            log.error("%s (%s%s)", exc, type(cause).__name__, f" {code}" if code else "")


def build(config: dict) -> Messenger:
    outbox = Outbox(config["OUTBOX_DIR"])
    if config["EMAIL_BACKEND"] == "smtp":
        email = SmtpSender(host=config["SMTP_HOST"], port=config["SMTP_PORT"], security=config["SMTP_SECURITY"],
                           username=config["SMTP_USERNAME"], password=config["SMTP_PASSWORD"],
                           sender=config["SMTP_FROM"], timeout=config["SMTP_TIMEOUT"],
                           ca_file=config["SMTP_CA_FILE"] or None)
    else:
        email = outbox
    if config["SMS_BACKEND"] == "outbox":
        sms = outbox
    else:
        sms = load_provider(config["SMS_BACKEND"], json.loads(config["SMS_OPTIONS"] or "{}"))
    return Messenger(email, sms, background=bool(config["MESSAGING_BACKGROUND"]))


def init_app(app: Flask) -> None:
    app.extensions["idp.messenger"] = build(app.config)


def messenger() -> Messenger:
    return current_app.extensions["idp.messenger"]


def send_email(to: str, subject: str, body: str) -> None:
    messenger().send(Message("email", to, body, subject))


def send_sms(to: str, body: str) -> None:
    messenger().send(Message("sms", to, body))


def send_later(channel: str, to: str, body: str, subject: str = "") -> None:
    messenger().send_later(Message(channel, to, body, subject))


def wait_idle(timeout: float = 10.0) -> bool:
    return messenger().wait_idle(timeout)
