"""What a subsite learns about a person: the one place that decides the claims of ID tokens and
UserInfo responses (OIDC Core §5.4 scope claims, §5.5 the ``claims`` request, §8 subject types).

Domain facts come from ``accounts``; this module applies the release policy (scopes, the client's
registration, the token's assurance level, the business acted for).
"""
from __future__ import annotations

from ..accounts.officials import official_claim
from ..accounts.representation import org_claim
from ..accounts.service import claims_for


def subject_for(person, client) -> str:
    """The ``sub`` this client sees for this person (public subject; pairwise per OIDC Core §8.1 later)."""
    return person.sub


def userinfo_claims(person, *, client, scopes: set[str], acr: str | None = None,
                    representation_id: int | None = None, claims_request: dict | None = None) -> dict:
    """Claims for the UserInfo endpoint (OIDC Core §5.3.2)."""
    claims = claims_for(person, scopes)
    claims["sub"] = subject_for(person, client)
    claims.update(_acting_claims(person, scopes, representation_id))
    return claims


def id_token_claims(person, *, client, scopes: set[str], acr: str | None = None,
                    representation_id: int | None = None, claims_request: dict | None = None) -> dict:
    """Claims about the person carried in the ID token besides the protocol ones (``sub`` included)."""
    return {"sub": subject_for(person, client), **_acting_claims(person, scopes, representation_id)}


def _acting_claims(person, scopes: set[str], representation_id: int | None) -> dict:
    """``org`` (the business acted for, re-checked now) and ``official`` (staff memberships)."""
    claims = {}
    if "org" in scopes and (org := org_claim(representation_id, person)):
        claims["org"] = org
    if "official" in scopes and (official := official_claim(person)):
        claims["official"] = official
    return claims
