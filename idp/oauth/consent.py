"""Remembered consent per person and client."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ..audit.service import record
from ..db import db, transaction, utcnow
from .models import Consent

# What the consent page says each scope releases.
SCOPE_LABELS = {
    "openid": "您的身份标识 / Your identifier",
    "profile": "姓名和用户名 / Your name and username",
    "email": "电子邮箱 / Your email address",
    "phone": "手机号码 / Your mobile phone number",
    "offline_access": "在您退出后继续访问 / Access while you are signed out",
    "org": _l("The business you act for: its name, credit code and your role"),
    "official": _l("The departments you work for as an official, and your roles"),
}


def effective_scopes(scope: str, prompt: str | None) -> list[str]:
    """OIDC Core §11: offline_access only when prompt contains consent; otherwise it is ignored."""
    scopes = scope.split()
    if "offline_access" in scopes and "consent" not in (prompt or "").split():
        scopes.remove("offline_access")
    return scopes


def covers(person, client, scopes) -> bool:
    row = db.session.execute(select(Consent).where(Consent.person_id == person.id,
                                                   Consent.client_id == client.client_id)).scalars().first()
    return row is not None and set(scopes) <= set(row.scopes)


def grant(person, client, scopes) -> None:
    with transaction():
        row = db.session.execute(select(Consent).where(Consent.person_id == person.id,
                                                       Consent.client_id == client.client_id)).scalars().first()
        remembered = sorted(set(scopes) - {"offline_access"})  # offline access is asked for each time
        if row is None:
            db.session.add(Consent(person_id=person.id, client_id=client.client_id, scopes=remembered))
        else:
            row.scopes, row.granted_at = sorted(set(row.scopes) | set(remembered)), utcnow()
        record("consent.granted", actor=f"person:{person.sub}", target=f"client:{client.client_id}",
               detail={"scopes": sorted(scopes)})


def record_denial(person, client) -> None:
    with transaction():
        record("consent.denied", actor=f"person:{person.sub}", target=f"client:{client.client_id}", outcome="denied")
