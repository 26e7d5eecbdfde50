"""Consent: what a person allowed each subsite to receive, remembered per person and client,
reviewed and withdrawn on ``/account/consents``.

- Remembered consent covers later authorizations for the same or fewer scopes; first-party
  subsites skip the page, except for what follows.
- ``offline_access`` is asked each time, and only with ``prompt=consent`` (OIDC Core §11).
- A sensitive claim (the resident ID number, scope ``id_card``) is asked **at every
  authorization that would release it**, first-party or not, with its own checkbox (PIPL Art. 29:
  separate consent for sensitive personal information). The latest answer is remembered: release
  checks it (so a later "no" also stops tokens issued earlier), and the review page shows it.
- Withdrawing removes the consent, revokes that subsite's tokens for the person, and the next
  authorization asks again.
"""
from __future__ import annotations

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select

from ..audit.service import record
from ..db import db, transaction, utcnow
from ..errors import NotFound
from . import claims as release
from .models import Client, Consent
from .tokens import revoke_issued

# The permissions the review page lists per scope (the consent page lists claim by claim).
SCOPE_LABELS = {
    "openid": _l("An identifier for you at this site"),
    "profile": _l("Your name and username"),
    "email": _l("Your email address"),
    "phone": _l("Your mobile phone number"),
    "id_card": _l("Your resident ID number (asked every time)"),
    "offline_access": _l("Access while you are signed out"),
    "org": _l("The business you act for: its name, credit code and your role"),
    "official": _l("The departments you work for as an official, and your roles"),
}
# The form field of the separate consent to a sensitive scope (one checkbox per scope).
SENSITIVE_FIELD = "consent_sensitive"


def effective_scopes(scope: str, prompt: str | None) -> list[str]:
    """OIDC Core §11: offline_access only when prompt contains consent; otherwise it is ignored."""
    scopes = scope.split()
    if "offline_access" in scopes and "consent" not in (prompt or "").split():
        scopes.remove("offline_access")
    return scopes


def _row(person_id: int, client_id: str) -> Consent | None:
    return db.session.execute(select(Consent).where(Consent.person_id == person_id,
                                                    Consent.client_id == client_id)).scalars().first()


def covers(person, client, scopes) -> bool:
    row = _row(person.id, client.client_id)
    return row is not None and set(scopes) - release.SENSITIVE_SCOPES <= set(row.scopes)


def remembers(person, client, scope: str) -> bool:
    """Did the person's latest answer allow this (sensitive) scope for this client?"""
    row = _row(person.id, client.client_id)
    return row is not None and scope in row.scopes


def required(principal, client, scopes, prompts) -> bool:
    """Must this authorization show the consent page?"""
    if "consent" in prompts or "offline_access" in scopes:
        return True
    if release.will_release_sensitive(principal.person, client, set(scopes), principal.acr):
        return True
    return not client.first_party and not covers(principal.person, client, scopes)


def without_sensitive(scopes) -> list[str]:
    """The scopes of an authorization that showed no consent page: never a sensitive one."""
    return [s for s in scopes if s not in release.SENSITIVE_SCOPES]


def grant(principal, client, scopes, *, sensitive_allowed) -> list[str]:
    """Record an "allow"; returns the scopes granted: a sensitive scope only if its own checkbox was
    ticked (``sensitive_allowed``) and it can be released at this sign-in."""
    person = principal.person
    asked = release.will_release_sensitive(person, client, set(scopes), principal.acr)
    yes = asked & set(sensitive_allowed)
    granted = [s for s in scopes if s not in release.SENSITIVE_SCOPES or s in yes]
    with transaction():
        row = _row(person.id, client.client_id)
        remembered = set(granted) - {"offline_access"}  # offline access is asked for each time
        if row is None:
            db.session.add(Consent(person_id=person.id, client_id=client.client_id, scopes=sorted(remembered)))
        else:
            # The latest answer about a sensitive scope replaces the earlier one.
            row.scopes, row.granted_at = sorted((set(row.scopes) - asked) | remembered), utcnow()
        record("consent.granted", actor=f"person:{person.sub}", target=f"client:{client.client_id}",
               detail={"scopes": sorted(granted), "sensitive_declined": sorted(asked - yes)})
    return granted


def record_denial(person, client) -> None:
    with transaction():
        record("consent.denied", actor=f"person:{person.sub}", target=f"client:{client.client_id}", outcome="denied")


def render_page(client, scopes, principal, action: str) -> str:
    """The consent page: exactly what the subsite will receive, claim by claim."""
    person = principal.person
    items, withheld = release.consent_items(person, client=client, scopes=set(scopes), acr=principal.acr,
                                            representation_id=principal.representation_id)
    return render_template("consent.html", client=client, person=person, action=action,
                           items=[i for i in items if not i.sensitive], sensitive=[i for i in items if i.sensitive],
                           withheld=withheld, offline="offline_access" in scopes, field=SENSITIVE_FIELD,
                           sensitive_scope=release.ID_CARD_SCOPE)


def list_consents(person) -> list[dict]:
    """The person's consents, newest first: each subsite, what it may receive, when granted."""
    rows = db.session.execute(select(Consent, Client).join(Client, Client.client_id == Consent.client_id)
                              .where(Consent.person_id == person.id)
                              .order_by(Consent.granted_at.desc())).all()
    return [{"client_id": c.client_id, "client_name": c.name, "granted_at": row.granted_at, "first_party": c.first_party,
             "scopes": [str(SCOPE_LABELS.get(s, s)) for s in sorted(row.scopes, key=_scope_order)]}
            for row, c in rows]


def _scope_order(scope: str) -> int:
    order = list(SCOPE_LABELS)
    return order.index(scope) if scope in order else len(order)


def withdraw(person, client_id: str, actor: str | None = None) -> dict:
    """Remove the consent and revoke every token and pending code of that subsite for this person."""
    now = utcnow()
    with transaction():
        row = _row(person.id, client_id) if isinstance(client_id, str) else None
        # Deleted by a statement that says whether it deleted: a second click (another tab) that read
        # the consent before the first deleted it finds nothing here, and writes and records nothing.
        if row is None or not db.session.execute(delete(Consent).where(Consent.id == row.id)).rowcount:
            raise NotFound(_("No such consent."))
        revoked = revoke_issued(now, person_id=person.id, client_id=client_id)
        record("consent.withdrawn", actor=actor or f"person:{person.sub}", target=f"client:{client_id}",
               detail={"tokens_revoked": revoked})
    return {"client_id": client_id, "tokens_revoked": revoked}
