"""Helpers for businesses and officials tests (here and in tests/oauth)."""
from __future__ import annotations

from tests.conftest import PASSWORD

TENCENT = "9144030071526726XG"
HUAWEI = "914403001922038216"


def citizen(username: str, *, verified: bool = False, name: str | None = None):
    """A citizen account; ``verified`` records a real-name check (level 2) as the counter check would."""
    from idp.accounts.service import create_citizen
    from idp.db import transaction, utcnow

    person = create_citizen(username=username, password=PASSWORD, name=name)
    if verified:
        with transaction():
            person.level, person.identity_verified_at, person.identity_method = 2, utcnow(), "counter"
    return person


def audit_actions() -> list[str]:
    from sqlalchemy import select

    from idp.audit.models import AuditEvent
    from idp.db import db

    return list(db.session.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars())
