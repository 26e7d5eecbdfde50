"""What a subsite learns about a person: the one place that decides the claims of ID tokens and
UserInfo responses (OIDC Core §5.4 scope claims, §5.5 the ``claims`` request, §8 subject types),
and what the consent page says they will be.

Domain facts come from ``accounts``; this module applies the release policy (scopes, the client's
registration, the token's assurance level, the person's consent, the business acted for).

- Scope claims (§5.4) go to UserInfo; the ID token carries ``sub`` plus the claims the relying
  party asked for in the ``claims`` request's ``id_token`` member (§5.5), and only those the
  granted scopes allow: a ``claims`` request never widens what the scopes grant.
- ``id_card`` releases the resident ID number as ``id_card_number`` (personal sensitive
  information, PIPL Art. 28-29): only if the client is registered for the scope, the person gave
  the separate consent (asked at every authorization that would release it; see ``consent``),
  and the token's ``acr`` is level 2 or higher.
"""
from __future__ import annotations

from ..accounts.officials import official_claim
from ..accounts.representation import org_claim
import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from typing import Callable

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..accounts.protection import (FIELD_EMAIL, FIELD_ID_NUMBER, FIELD_PHONE, mask_email, mask_id_number,
                                   mask_phone, protector)
from ..config import level_for_acr
from ..db import epoch
from .clients import sector_of

ID_CARD_SCOPE = "id_card"
ID_CARD_CLAIM = "id_card_number"
SENSITIVE_LEVEL = 2  # the least assurance level at which sensitive claims are released


@dataclass
class Subject:
    """One person as seen by one client in one grant; decrypts each identifier at most once."""

    person: object
    client: object
    acr: str | None = None
    representation_id: int | None = None

    @cached_property
    def email(self) -> str | None:
        return protector().decrypt(self.person.email_enc, FIELD_EMAIL)

    @cached_property
    def phone(self) -> str | None:
        return protector().decrypt(self.person.phone_enc, FIELD_PHONE)

    @cached_property
    def id_number(self) -> str | None:
        return protector().decrypt(self.person.id_number_enc, FIELD_ID_NUMBER)


def _verified(flag: bool, present) -> bool | None:
    return bool(flag) if present else None


def _yes_no(value) -> str:
    return _("yes") if value else _("no")


@dataclass(frozen=True)
class Claim:
    name: str
    scope: str
    label: object  # what the consent page calls it (lazy translation)
    value: Callable[[Subject], object]  # None: the person has no such value, nothing is released
    shown: Callable[[object], str] = str  # the person's own value on the consent page, masked where sensitive
    sensitive: bool = False  # personal sensitive information: its own consent, level >= 2
    in_id_token: bool = False  # carried in the ID token whenever its scope is granted (not only on request)


CLAIMS: tuple[Claim, ...] = (
    Claim("name", "profile", _l("Name"), lambda s: s.person.name),
    Claim("preferred_username", "profile", _l("Username"), lambda s: s.person.username),
    Claim("updated_at", "profile", _l("When your profile was last updated"),
          lambda s: epoch(s.person.updated_at) if s.person.updated_at else None,
          shown=lambda v: datetime.fromtimestamp(v, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
    Claim("email", "email", _l("Email address"), lambda s: s.email, shown=mask_email),
    Claim("email_verified", "email", _l("Whether your email address is verified"),
          lambda s: _verified(s.person.email_verified, s.email), shown=_yes_no),
    Claim("phone_number", "phone", _l("Mobile phone number"), lambda s: "+86" + s.phone if s.phone else None,
          shown=lambda v: mask_phone(v.removeprefix("+86"))),
    Claim("phone_number_verified", "phone", _l("Whether your mobile phone number is verified"),
          lambda s: _verified(s.person.phone_verified, s.phone), shown=_yes_no),
    # The business acted for (re-checked at every release) and staff memberships: in the ID token too.
    Claim("org", "org", _l("The business you act for"), lambda s: org_claim(s.representation_id, s.person),
          shown=lambda v: f"{v['name']} ({v['uscc']})", in_id_token=True),
    Claim("official", "official", _l("Your departments and roles as an official"),
          lambda s: official_claim(s.person) or None,
          shown=lambda v: ", ".join(f"{d['department_name']} ({d['role']})" for d in v), in_id_token=True),
    Claim(ID_CARD_CLAIM, ID_CARD_SCOPE, _l("Resident ID number"), lambda s: s.id_number, shown=mask_id_number,
          sensitive=True),
)
SENSITIVE_SCOPES = frozenset(c.scope for c in CLAIMS if c.sensitive)


def _level(acr: str | None) -> int:
    return (level_for_acr(current_app.config, acr) or 0) if acr else 0


def sensitive_scope_allowed(client, scope: str, acr: str | None) -> bool:
    """The client is registered for the sensitive scope and the sign-in reached level 2."""
    return scope in (client.scopes or []) and _level(acr) >= SENSITIVE_LEVEL


def _released(s: Subject, scopes: set[str], *, asking: bool = False) -> list[Claim]:
    """The claims the granted scopes release to this client now. ``asking``: the consent page is
    asking for the sensitive consent, so it is not required yet."""
    out = []
    for c in CLAIMS:
        if c.scope not in scopes:
            continue
        if c.sensitive and not (sensitive_scope_allowed(s.client, c.scope, s.acr)
                                and (asking or _sensitive_consent(s, c.scope))):
            continue
        out.append(c)
    return out


def _sensitive_consent(s: Subject, scope: str) -> bool:
    from .consent import remembers  # consent builds its page from this module

    return remembers(s.person, s.client, scope)


def _values(s: Subject, claims) -> dict:
    out = {}
    for c in claims:
        value = c.value(s)
        if value is not None:
            out[c.name] = value
    return out


def _requested(claims_request: dict | None, member: str) -> set[str]:
    """Names the OIDC Core §5.5 ``claims`` request asks for in ``member`` ("id_token" or "userinfo")."""
    asked = (claims_request or {}).get(member) if isinstance(claims_request, dict) else None
    return set(asked) if isinstance(asked, dict) else set()


def subject_for(person, client) -> str:
    """The ``sub`` this client sees: the public subject, or for a pairwise client (OIDC Core §8.1)
    base64url(HMAC-SHA-256(pairwise key, sector identifier ‖ public subject)), the same for every
    client of one sector and unlinkable across sectors."""
    return subject_of(person.sub, client)


def subject_of(public_sub: str, client) -> str:
    """``subject_for`` from the person's public subject alone."""
    if client.subject_type != "pairwise":
        return public_sub
    message = f"{sector_of(client)}\x00{public_sub}".encode()
    mac = hmac.new(current_app.extensions["idp.pairwise_key"], message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def is_subject_of(person, client, sub) -> bool:
    """Is ``sub`` (from a token this client held) this person's subject at this client?"""
    return isinstance(sub, str) and hmac.compare_digest(subject_for(person, client).encode(), sub.encode())


def userinfo_claims(person, *, client, scopes: set[str], acr: str | None = None,
                    representation_id: int | None = None) -> dict:
    """Claims for the UserInfo endpoint (OIDC Core §5.3.2): every claim the granted scopes release
    (a ``claims`` request's ``userinfo`` member adds nothing: it never widens what the scopes grant)."""
    s = Subject(person, client, acr, representation_id)
    return {"sub": subject_for(person, client), **_values(s, _released(s, scopes))}


def id_token_claims(person, *, client, scopes: set[str], acr: str | None = None,
                    representation_id: int | None = None, claims_request: dict | None = None) -> dict:
    """Claims about the person carried in the ID token besides the protocol ones (``sub`` included):
    those of the ``claims`` request's ``id_token`` member that the granted scopes release (§5.5)."""
    s = Subject(person, client, acr, representation_id)
    asked = _requested(claims_request, "id_token")
    return {"sub": subject_for(person, client),
            **_values(s, [c for c in _released(s, scopes) if c.in_id_token or c.name in asked])}


@dataclass(frozen=True)
class ConsentItem:
    claim: str
    label: str
    shown: str
    sensitive: bool


def consent_items(person, *, client, scopes: set[str], acr: str | None = None,
                  representation_id: int | None = None) -> tuple[list[ConsentItem], list[ConsentItem]]:
    """What the consent page lists: the claims the subsite will receive, claim by claim, with the
    person's own value (masked where sensitive); and the sensitive claims it asked for but will not
    receive at this sign-in level."""
    s = Subject(person, client, acr, representation_id)
    released = _released(s, scopes, asking=True)
    items = [ConsentItem(c.name, str(c.label), c.shown(v), c.sensitive)
             for c in released if (v := c.value(s)) is not None]
    withheld = [ConsentItem(c.name, str(c.label), "", True) for c in CLAIMS
                if c.sensitive and c.scope in scopes and c not in released and c.value(s) is not None]
    return items, withheld


def will_release_sensitive(person, client, scopes: set[str], acr: str | None) -> set[str]:
    """The sensitive scopes an authorization would release if the person consents (each needs its
    own, explicit consent)."""
    s = Subject(person, client, acr)
    return {c.scope for c in _released(s, scopes, asking=True) if c.sensitive and c.value(s) is not None}
