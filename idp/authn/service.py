"""Password login as one use case: check, audit, start the session."""
from __future__ import annotations

from flask import current_app

from ..accounts.service import check_password
from ..audit.service import record
from ..config import acr_for_level
from ..db import transaction
from ..sessions.models import SsoSession
from ..sessions.service import start_session
from . import throttle


def login_with_password(login: str, password: str, previous: SsoSession | None):
    """Returns (session, cookie) or None; raises 429 while the name or address is locked.
    Failures are audited without the name typed."""
    keys = throttle.keys_for(login)
    throttle.check(keys)
    person = check_password(login, password)
    if person is None:
        with transaction():
            throttle.record_failure(keys)
            record("login.failed", actor="anonymous", outcome="failure", detail={"method": "pwd"})
        return None
    throttle.clear_name(keys)
    with transaction():
        record("login.succeeded", actor=f"person:{person.sub}", target=f"person:{person.sub}", detail={"method": "pwd"})
    acr = acr_for_level(current_app.config, 1)
    return start_session(person, acr=acr, amr=["pwd"], replaces=previous)
