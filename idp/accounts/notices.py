"""The texts the hub sends to people (one-time codes and warnings), in the language of the page that
caused them, and the one way they are sent (off the request, see ``idp.messaging.send_later``)."""
from __future__ import annotations

from flask import current_app
from flask_babel import gettext as _

from .. import messaging


def _sign(body: str, channel: str) -> str:
    # Chinese SMS gateways require the sender's signature in brackets at the start of every text.
    return _("[Benxi City Identity] %(text)s", text=body) if channel == "phone" else body


def _send(channel: str, to: str, subject: str, body: str) -> None:
    messaging.send_later("sms" if channel == "phone" else "email", to, _sign(body, channel), subject)


def send_code(channel: str, to: str, purpose: str, code: str) -> None:
    minutes = current_app.config["VERIFICATION_CODE_TTL"] // 60
    if purpose == "reset":
        subject = _("Your password reset code")
        body = _("Your code to reset your password is %(code)s. It is valid for %(minutes)s minutes. If you did "
                 "not ask to reset your password, ignore this message: your password has not changed.",
                 code=code, minutes=minutes)
    else:
        subject = _("Your registration code")
        body = _("Your registration code is %(code)s. It is valid for %(minutes)s minutes. Never tell anyone "
                 "this code, not even staff.", code=code, minutes=minutes)
    _send(channel, to, subject, body)


def send_already_registered(channel: str, to: str) -> None:
    """Someone tried to register with a phone number or address that already has an account."""
    reset = current_app.config["ISSUER"] + "/reset"
    subject = _("Someone tried to register with your details")
    if channel == "phone":
        body = _("Someone tried to register a new account with this phone number, which already belongs to "
                 "an account. If it was you, sign in, or reset your password at %(url)s. If not, you can ignore "
                 "this message.", url=reset)
    else:
        body = _("Someone tried to register a new account with this email address, which already belongs to "
                 "an account. If it was you, sign in, or reset your password at %(url)s. If not, you can ignore "
                 "this message.", url=reset)
    _send(channel, to, subject, body)


def send_id_number_claimed(channel: str, to: str) -> None:
    """Someone who proved another phone or address tried to register with this account's ID number."""
    subject = _("Someone tried to register with your ID number")
    body = _("Someone tried to register a new account with your resident ID number. Your account is "
             "unchanged. If it was not you, contact the service counter.")
    _send(channel, to, subject, body)


def send_password_changed(channel: str, to: str) -> None:
    subject = _("Your password was changed")
    body = _("The password of your account was just changed and you were signed out everywhere else. If it "
             "was not you, reset your password at %(url)s at once.", url=current_app.config["ISSUER"] + "/reset")
    _send(channel, to, subject, body)


def send_account_closed(channel: str, to: str) -> None:
    """Sent before the contact details are erased: if it was not the holder, they learn at once."""
    subject = _("Your city account was closed")
    body = _("Your city account was just closed and its personal information deleted. If it was not you, "
             "contact the service counter at once.")
    _send(channel, to, subject, body)


def send_data_copied(channel: str, to: str) -> None:
    subject = _("A copy of your account's data was downloaded")
    body = _("A copy of your city account's data, with your ID number, was just downloaded. If it was not "
             "you, change your password at once and contact the service counter.")
    _send(channel, to, subject, body)


def contact_of(person) -> tuple[str, str] | None:
    """Where to reach a person: the phone if there is one, else the email address."""
    from .protection import protector

    p = protector()
    if person.phone_enc:
        return "phone", p.decrypt(person.phone_enc, "phone")
    if person.email_enc:
        return "email", p.decrypt(person.email_enc, "email")
    return None
