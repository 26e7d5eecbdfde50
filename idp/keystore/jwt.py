"""Signing and checking our own JWTs with the current keys (joserfc; never hand-rolled)."""
from __future__ import annotations

from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError


def sign_jwt(header: dict, claims: dict, alg: str) -> str:
    key = current_app.extensions["idp.keystore"].signing_key(alg)
    return jwt.encode({**header, "alg": alg, "kid": key.kid}, claims, key.jwk, algorithms=[alg])


def verify_own_jwt(token: str) -> dict | None:
    """Claims of a JWT we signed (any published key, RS256/ES256), or None. Expiry is the caller's call."""
    if not isinstance(token, str) or len(token) > 8192 or token.count(".") != 2:
        return None
    try:
        decoded = jwt.decode(token, current_app.extensions["idp.keystore"].public_keyset(), algorithms=["RS256", "ES256"])
    except (JoseError, ValueError, TypeError):
        return None
    claims = decoded.claims
    if claims.get("iss") != current_app.config["ISSUER"]:
        return None
    return claims
