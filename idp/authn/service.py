"""Login as use cases: the password, then (when enrolled) the second factor, and the step-up of a
live session. Each checks, audits, and starts or raises the SSO session; assurance comes from one rule
(``assurance.assess``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..accounts.models import Person
from ..accounts.service import attempt_password
from ..audit.service import record
from ..db import transaction
from ..ops.metrics import record_login
from ..sessions.models import SsoSession
from ..sessions.service import raise_session, start_session
from . import throttle, totp
from .assurance import AMR, assess


@dataclass
class SecondFactorRequired:
    """The password was right; the person has TOTP, so no session until a code is given."""

    person: Person


def _checked(check, *args, method: str, **kwargs):
    """Run a throttled check, counting a refusal while locked as a ``locked`` login."""
    try:
        return check(*args, **kwargs)
    except throttle.Throttled:
        record_login(method, "locked")
        raise


def login_with_password(login: str, password: str, previous: SsoSession | None):
    """Returns (session, cookie), ``SecondFactorRequired``, or None for a wrong name or password;
    raises 429 while the name or address is locked. Failures are audited without the name typed."""
    keys = throttle.keys_for(login)
    _checked(throttle.check, keys, method="password")
    person, named = attempt_password(login, password)
    if person is None:
        with transaction():
            throttle.record_failure(keys)
            # The account named (its public id, not the name typed) goes on the record, so its holder
            # sees the attempt (``/account/activity``); the answer is the same either way.
            record("login.failed", actor="anonymous", target=f"person:{named.sub}" if named else None,
                   outcome="failure", detail={"method": "pwd"})
        record_login("password", "failure")
        return None
    throttle.clear_name(keys)
    if totp.has_totp(person):
        with transaction():  # also commits a password rehash
            record("login.password_verified", actor=f"person:{person.sub}", target=f"person:{person.sub}",
                   detail={"method": "pwd", "next": "otp"})
        record_login("password", "second_factor_required")
        return SecondFactorRequired(person)
    record_login("password", "success")
    a = assess(person, ["pwd"])
    return start_session(person, acr=a.acr, amr=a.amr, replaces=previous, login={"method": "pwd"})


def login_with_second_factor(person: Person, code: str, previous: SsoSession | None):
    """The second step of a login whose password passed: (session, cookie), or None for a wrong code;
    raises 429 while the person's codes or the address are locked."""
    method = _checked(totp.check_second_factor, person, code, purpose="login", method="otp")
    if method is None:
        record_login("otp", "failure")
        return None
    record_login("otp", "success")
    a = assess(person, ["pwd", AMR[method]])
    return start_session(person, acr=a.acr, amr=a.amr, replaces=previous, login={"method": "pwd+" + method})


def step_up(session: SsoSession, code: str) -> str | None:
    """Add the second factor to a live session (same ``sid``); returns its new cookie value, or None
    for a wrong code; raises 429 while locked."""
    person = session.person
    method = totp.check_second_factor(person, code, purpose="step_up")
    if method is None:
        return None
    a = assess(person, [*(session.amr or []), AMR[method]])
    return raise_session(session, acr=a.acr, amr=a.amr)
