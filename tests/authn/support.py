"""Helpers of the authentication tests."""
from __future__ import annotations


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
