"""Password reset by a verified channel: a one-time code to the account's registered phone (or email),
then a new password; every session of the person ends.

No user enumeration: step 1 answers "if an account matches, a code was sent" whatever was typed.
When nothing matches (or the account has no phone or email, or is disabled), a stand-in code that
nobody receives is made in the same way, so cooldowns, limits, wrong-code answers and the work done
(hence the timing) are the same.
"""
from __future__ import annotations

from flask_babel import gettext as _

from ..audit.service import record
from ..authn import throttle, verification
from ..db import db, transaction
from ..sessions.logout import end_sessions, live_sessions_of
from . import notices
from .models import Person
from .protection import protector
from .service import InvalidInput, find_by_login, personal_context, set_password


def request_reset(login: str | None) -> str:
    """Step 1: a code to the account found by username, phone or ID number; returns the ticket."""
    login = (login or "").strip()
    if not login or len(login) > 64:
        raise InvalidInput("login", _("Enter your username, mobile phone number or ID number."))
    keys = throttle.keys_for_scope("code", "reset:" + login.lower())
    throttle.check(keys)
    person = find_by_login(login)
    contact = notices.contact_of(person) if person is not None and person.active else None
    with transaction():
        throttle.record_failure(keys)  # counts a request
        if contact is not None:
            issued = verification.issue("reset", contact[0], contact[1], person_id=person.id)
        else:
            stand_in = protector().blind_index(login.lower(), "reset-stand-in")
            issued = verification.issue("reset", "phone", "", index=stand_in)
        record("password_reset.requested", actor="anonymous",
               target=f"person:{person.sub}" if contact is not None else None,
               outcome="success" if contact is not None else "no_match", detail={"sent": issued.fresh})
    if contact is not None and issued.fresh:
        notices.send_code(contact[0], contact[1], "reset", issued.code)
    return verification.ticket_for(issued.row)


def complete_reset(ticket: str | None, code: str, password: str) -> Person:
    """Step 2: the code, then the new password; ends every session of the person (all devices)."""
    row = verification.row_for_ticket(ticket, "reset")
    verification.verify(row, code)
    person = db.session.get(Person, row.person_id) if row.person_id is not None else None
    if person is None or not person.active:  # a stand-in code is never right unless guessed
        raise verification.CodeRefused(_("The code is wrong. Check the latest message and try again."),
                                       code="wrong_code")
    context = personal_context(person)
    sessions = live_sessions_of(person.id)
    with transaction():
        set_password(person, password)  # InvalidInput("password") rolls back: the code stays usable
        verification.consume(row)
        throttle.clear_logins(*context.values())  # the owner may sign in at once with the new password
        record("password.reset", actor=f"person:{person.sub}", target=f"person:{person.sub}",
               detail={"channel": row.channel, "sessions_ended": len(sessions)})
    end_sessions(sessions, reason="password_reset", actor=f"person:{person.sub}")
    return person
