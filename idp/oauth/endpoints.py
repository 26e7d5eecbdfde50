"""Revocation (RFC 7009), introspection (RFC 7662) and the UserInfo bearer check (RFC 6750)."""
from __future__ import annotations

import json

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint as _Revocation
from authlib.oauth2.rfc7523 import JWTBearerGrant
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _Introspection
from flask import current_app
from joserfc import jws
from joserfc.errors import JoseError

from ..accounts.models import status_is_active
from ..db import epoch, utcnow
from . import tokens
from .claims import subject_of
from .clients import get_client

CLIENT_AUTH = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
# A stored token's DPoP binding is its row's ``cnf_jkt`` (RFC 9449 §6.1; client_credentials tokens
# are stateless, their ``cnf`` read by ``tokens.stateless_claims``). Rows stored before that column
# existed (migration 0007) of the one grant that bound then (``official_grant``) are read from the token.
_BINDING_GRANTS = frozenset({JWTBearerGrant.GRANT_TYPE})


class _Found:
    """A token row and which of its two values (access or refresh) was presented."""

    def __init__(self, row, kind: str, value: str):
        self.row, self.kind, self.value = row, kind, value

    def cnf(self) -> dict | None:
        """An access token's DPoP binding (RFC 9449 §6.1): its row's ``cnf_jkt``; for an older row of a
        binding grant, read from the token itself (its row was found by digest, so it is the very token
        we signed: no second signature check; parsing costs more than the rest of an introspection)."""
        if self.kind != "access_token":
            return None
        if self.row.cnf_jkt is not None:
            return {"jkt": self.row.cnf_jkt}
        if self.row.grant_type not in _BINDING_GRANTS:
            return None
        try:
            cnf = json.loads(jws.extract_compact(self.value.encode()).payload).get("cnf")
        except (JoseError, ValueError, TypeError, AttributeError):
            return None
        return {"jkt": cnf["jkt"]} if isinstance(cnf, dict) and isinstance(cnf.get("jkt"), str) else None

    def check_client(self, client):
        return self.row.client_id == client.client_id

    @property
    def active(self) -> bool:
        r, now = self.row, utcnow()
        if r.revoked_at is not None:
            return False
        if r.person_id is not None and not status_is_active(r.person_status):  # a disabled account's
            return False
        if self.kind == "access_token":
            return r.access_revoked_at is None and r.access_expires_at > now
        return tokens.refresh_is_live(r)


class _Stateless:
    """A ``client_credentials`` access token: signed, never stored, not revoked (no row for it);
    Bearer or DPoP-bound (``cnf``, RFC 9449 §6.1)."""

    kind = "access_token"

    def __init__(self, value: str, claims: dict):
        self.value, self.claims = value, claims

    def check_client(self, client):
        return self.claims["client_id"] == client.client_id

    @property
    def active(self) -> bool:  # signature and expiry checked by tokens.stateless_claims
        return get_client(self.claims["client_id"]) is not None


def _lookup(value, hint):
    # One query finds the token by either value, so the hint (RFC 7662 §2.1, RFC 7009 §2.1) has no
    # order of lookups to change.
    if not isinstance(value, str) or len(value) > 4096:
        return None
    row, kind = tokens.find_token_row(value)
    if row is not None:
        return _Found(row, kind, value)
    claims = tokens.stateless_claims(value)  # no row (so never revoked): a client's own stateless token?
    return _Stateless(value, claims) if claims is not None else None


def _check_params(request) -> None:
    """``token`` is required; an unknown ``token_type_hint`` is ignored (RFC 7009 §2.1, RFC 7662 §2.1)."""
    if not request.form.get("token"):
        raise InvalidRequestError("Missing 'token'.")


class RevocationEndpoint(_Revocation):
    CLIENT_AUTH_METHODS = CLIENT_AUTH + ["none"]

    def check_params(self, request, client):
        _check_params(request)

    def query_token(self, token_string, token_type_hint):
        return _lookup(token_string, token_type_hint)

    def revoke_token(self, token, request):
        # Revoking a refresh token ends the whole grant (RFC 7009 §2.1: SHOULD also invalidate
        # access tokens of the same authorization grant); an access token alone ends itself.
        if isinstance(token, _Stateless):
            tokens.revoke_stateless(token.value, token.claims)
        elif token.kind == "refresh_token":
            tokens.revoke_family(token.row.family)
        else:
            tokens.revoke_access(token.row.id)


class IntrospectionEndpoint(_Introspection):
    CLIENT_AUTH_METHODS = CLIENT_AUTH

    def check_params(self, request, client):
        _check_params(request)

    def query_token(self, token_string, token_type_hint):
        return _lookup(token_string, token_type_hint)

    def check_permission(self, token, client, request):
        # A subsite may introspect only the tokens issued to it (no cross-subsite tracking).
        return token.check_client(client)

    def introspect_token(self, token):
        if not token.active:
            return {"active": False}
        if isinstance(token, _Stateless):
            c = token.claims
            out = {"active": True, "client_id": c["client_id"], "sub": c["sub"],
                   "token_type": "DPoP" if "cnf" in c else "Bearer",
                   "exp": c["exp"], "iat": c.get("iat"), "iss": c["iss"], "aud": c.get("aud"), "jti": c["jti"]}
            if c.get("scope"):
                out["scope"] = c["scope"]
            if "cnf" in c:
                out["cnf"] = {"jkt": c["cnf"]["jkt"]}  # RFC 9449 §6.2: the key the token is bound to
            return out
        r = token.row
        sub = r.client_id
        if r.person_id is not None:
            public_sub = r.person_sub  # the lookup joins the person
            client = get_client(r.client_id)
            if public_sub is None or client is None:
                return {"active": False}
            sub = subject_of(public_sub, client)  # pairwise clients see their own subject (OIDC Core §8.1)
        exp = r.access_expires_at if token.kind == "access_token" else r.refresh_expires_at
        cnf = token.cnf()
        out = {"active": True, "scope": r.scope, "client_id": r.client_id, "sub": sub,
               "token_type": "refresh_token" if token.kind != "access_token" else "DPoP" if cnf else "Bearer",
               "exp": epoch(exp), "iat": epoch(r.issued_at), "iss": current_app.config["ISSUER"],
               "aud": r.client_id}
        if token.kind == "access_token":
            out["jti"] = r.jti
        if cnf:
            out["cnf"] = cnf  # RFC 9449 §6.2
        if r.acr:
            out["acr"] = r.acr
        if r.auth_time:
            out["auth_time"] = epoch(r.auth_time)
        return out

    def create_introspection_payload(self, token):
        # RFC 7662 §2.2: unknown, expired, revoked or not-yours tokens are all just inactive.
        return self.introspect_token(token) if token is not None else {"active": False}


class _BearerView:
    def __init__(self, row):
        self.row = row

    def is_expired(self):
        return self.row.access_expires_at <= utcnow()

    def is_revoked(self):
        return self.row.access_revoked_at is not None or self.row.revoked_at is not None

    def get_scope(self):
        return self.row.scope


class AccessTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string):
        row = tokens.find_access_token(token_string)
        return _BearerView(row) if row is not None else None


def build_resource_protector() -> ResourceProtector:
    rp = ResourceProtector()
    rp.register_token_validator(AccessTokenValidator())
    return rp
