"""What a subsite learns about a person: the one place that decides the claims of ID tokens and
UserInfo responses (OIDC Core §5.4 scope claims, §5.5 the ``claims`` request, §8 subject types).

Domain facts come from ``accounts``; this module applies the release policy (scopes, the client's
registration, the token's assurance level, the business acted for).
"""
from __future__ import annotations

from ..accounts.service import claims_for


def subject_for(person, client) -> str:
    """The ``sub`` this client sees for this person (public subject; pairwise per OIDC Core §8.1 later)."""
    return person.sub


def userinfo_claims(person, *, client, scopes: set[str], acr: str | None = None,
                    representation_id: int | None = None, claims_request: dict | None = None) -> dict:
    """Claims for the UserInfo endpoint (OIDC Core §5.3.2)."""
    claims = claims_for(person, scopes)
    claims["sub"] = subject_for(person, client)
    return claims


def id_token_claims(person, *, client, scopes: set[str], acr: str | None = None,
                    representation_id: int | None = None, claims_request: dict | None = None) -> dict:
    """Claims about the person carried in the ID token besides the protocol ones (``sub`` included)."""
    return {"sub": subject_for(person, client)}
