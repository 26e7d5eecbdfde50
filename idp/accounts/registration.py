"""Self-registration of citizens: a one-time code proves a phone number or an email address, then the
account is made (username, password, real name, resident ID number) and the person signed in.

No user enumeration: step 1 answers the same whether or not the phone or address already has an
account. When it has one, that account's owner gets a warning ("use password reset") instead of a
code, and a code that was never sent stands in for it, so everything that follows — cooldown,
wrong-code messages, limits, timing — is the same. Only after proving the phone or address may a
person learn that it is taken.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from ..audit.service import record
from ..authn import throttle, verification
from ..config import acr_for_level
from ..db import db, transaction
from ..ops.metrics import record_login
from ..sessions.models import SsoSession
from ..sessions.service import start_session
from . import notices
from .identifiers import normalize_id_number
from .models import Person
from .protection import mask_email, mask_phone, protector
from .service import EMAIL_RE, PHONE_RE, InvalidInput, check_citizen, create_citizen, normalize_phone


@dataclass
class CodeRequest:
    ticket: str  # for the UI session (opaque)
    channel: str  # phone | email
    masked: str  # the destination as the page may show it
    fresh: bool  # False: a code was sent moments ago and stays valid
    resend_at: datetime  # naive UTC


def parse_destination(value: str | None) -> tuple[str, str]:
    """("phone", 11 digits) or ("email", lower-case address); ``InvalidInput`` otherwise."""
    raw = unicodedata.normalize("NFKC", (value or "").strip())
    if "@" in raw:
        email = raw.lower()
        if len(email) <= 254 and EMAIL_RE.match(email):
            return "email", email
    else:
        phone = normalize_phone(raw)
        if PHONE_RE.match(phone or ""):
            return "phone", phone
    raise InvalidInput("destination", _("Enter a mobile phone number (11 digits starting with 1) or an email "
                                        "address."))


def _owner(channel: str, index: str) -> Person | None:
    column = Person.phone_index if channel == "phone" else Person.email_index
    return db.session.execute(select(Person).where(column == index).limit(1)).scalars().first()


def mask(channel: str, value: str) -> str:
    return mask_phone(value) if channel == "phone" else mask_email(value)


def request_code(destination: str) -> CodeRequest:
    """Step 1: send a code to a phone or address (or warn its owner); the same answer either way."""
    channel, value = parse_destination(destination)
    keys = throttle.keys_for_scope("code", f"{channel}:{value}")
    throttle.check(keys)
    index = verification.destination_index(channel, value)
    owner = _owner(channel, index)
    with transaction():
        throttle.record_failure(keys)  # counts a request
        issued = verification.issue("register", channel, value)
        record("registration.code_requested", actor="anonymous",
               target=f"person:{owner.sub}" if owner else None,
               outcome="existing_account" if owner else "success",
               detail={"channel": channel, "sent": issued.fresh})
    if issued.fresh:
        if owner is None:
            notices.send_code(channel, value, "register", issued.code)
        else:
            notices.send_already_registered(channel, value)
    return CodeRequest(verification.ticket_for(issued.row), channel, mask(channel, value), issued.fresh,
                       verification.resend_at(issued.row))


def resend_code(ticket: str | None) -> CodeRequest:
    """"Send the code again" on step 2: the same as step 1 for the destination of the ticket."""
    row = verification.row_for_ticket(ticket, "register")
    if row is None:
        raise verification.CodeRefused(_("This code has expired or was already used. Request a new one."),
                                       code="code_expired")
    return request_code(verification.destination_of(row))


def complete(ticket: str | None, code: str, *, username: str, password: str, name: str, id_number: str,
             previous: SsoSession | None = None) -> tuple[SsoSession, str]:
    """Step 2: check the person's input, then the code, then create the account and sign in.

    Returns (session, cookie) like a password login."""
    check_citizen(username=username, password=password, name=name, id_number=id_number)  # a typo costs no try
    row = verification.row_for_ticket(ticket, "register")
    verification.verify(row, code)
    channel, destination = row.channel, verification.destination_of(row)
    p = protector()
    if _owner(channel, row.destination_index) is not None:  # registered meanwhile (or a code never sent)
        with transaction():
            verification.consume(row)
        raise InvalidInput("code", _("This phone number or email address already belongs to an account. Sign in, "
                                     "or reset its password."), code="conflict", status=409)
    id_number = normalize_id_number(id_number)
    holder = db.session.execute(select(Person).where(
        Person.id_number_index == p.blind_index(id_number, "id_number"))).scalars().first()
    if holder is not None:
        # One account per person. Saying so is unavoidable; each such answer costs a proven phone or
        # address (the code is used up) and the account's owner is told.
        with transaction():
            verification.consume(row)
            record("registration.refused", actor="anonymous", target=f"person:{holder.sub}", outcome="failure",
                   detail={"reason": "id_number_taken", "channel": channel})
        if contact := notices.contact_of(holder):
            notices.send_id_number_claimed(*contact)
        raise InvalidInput("id_number", _("An account with this ID number already exists (one account per "
                                          "person). If it is yours, reset its password."),
                           code="conflict", status=409)
    person = create_citizen(username=username, password=password, name=name, id_number=id_number,
                            actor="self-registration", also=lambda: verification.consume(row),
                            **{channel: destination, f"{channel}_verified": True})
    record_login("registration", "success")
    return start_session(person, acr=acr_for_level(current_app.config, 1), amr=["pwd"], replaces=previous,
                         login={"method": "pwd", "via": "registration"})

