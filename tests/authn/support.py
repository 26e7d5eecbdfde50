"""What the MFA tests share: a clock the TOTP verifier reads, enrolling a person, signing in with a code."""
from __future__ import annotations

import time

import pyotp
import pytest

from tests.conftest import PASSWORD, form_fields


class Clock:
    """The verifier's clock (``idp.authn.totp.now``), moved by the test: no 30-second boundary races."""

    def __init__(self):
        self.t = (int(time.time()) // 30) * 30 + 5  # 5 s into a time step

    @property
    def step(self) -> int:
        return int(self.t) // 30

    def tick(self, steps: int = 1) -> None:
        self.t += 30 * steps

    def code(self, secret: str, offset: int = 0) -> str:
        """The code of the current time step (+ ``offset`` steps), as the person's app shows it."""
        return pyotp.TOTP(secret).generate_otp(self.step + offset)


@pytest.fixture
def clock(monkeypatch):
    from idp.authn import totp

    c = Clock()
    monkeypatch.setattr(totp, "now", lambda: c.t)
    return c


def enroll(person, clock: Clock) -> tuple[str, list[str]]:
    """Enroll and confirm TOTP for ``person`` through the service; returns (secret, recovery codes).
    The clock moves on one step, so the next code is not a replay of the confirmation code."""
    from idp.authn import totp

    totp.begin_enrollment(person, PASSWORD)
    secret = totp.pending_enrollment(person).key
    codes = totp.confirm_enrollment(person, clock.code(secret))
    clock.tick()
    return secret, codes


def login_with_code(client, code: str, username: str = "alice", password: str = PASSWORD, next_url: str = "/"):
    """Both login steps through the pages; returns the response of the second."""
    page = client.get("/login?next=" + next_url)
    first = client.post("/login", data={**form_fields(page.get_data(as_text=True)), "username": username,
                                        "password": password})
    assert first.status_code == 303 and first.location == "/login/otp", first.get_data(as_text=True)[-1500:]
    second = client.get("/login/otp")
    return client.post("/login/otp", data={**form_fields(second.get_data(as_text=True)), "otp": code})


@pytest.fixture
def in_request(app):
    """A request context for calling services directly (the throttle counts per client address)."""
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.10"}):
        yield


def let_delays_pass(seconds: int = 40) -> None:
    """Move every throttle row into the past, as if ``seconds`` had passed (progressive delays)."""
    from datetime import timedelta

    from idp.authn.models import LoginThrottle
    from idp.db import db

    for row in LoginThrottle.query:
        row.window_start -= timedelta(seconds=seconds)
        if row.locked_until is not None:
            row.locked_until -= timedelta(seconds=seconds)
    db.session.commit()
