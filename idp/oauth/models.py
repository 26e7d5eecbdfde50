"""Relying parties, codes, tokens and consents. Secrets, codes and tokens are stored as digests."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db, utcnow


class Client(db.Model):
    """A department subsite (OIDC Registration 1.0 §2 metadata, the parts we support)."""

    __tablename__ = "client"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    secret_digest: Mapped[str | None] = mapped_column(String(64))
    # The secret before the last rotation, accepted until then (``clients.rotate_secret``).
    previous_secret_digest: Mapped[str | None] = mapped_column(String(64))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column()
    redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(512))
    frontchannel_logout_uri: Mapped[str | None] = mapped_column(String(512))
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32), default="client_secret_basic")
    grant_types: Mapped[list] = mapped_column(JSON, default=list)
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    jwks: Mapped[dict | None] = mapped_column(JSON)
    first_party: Mapped[bool] = mapped_column(default=False)
    subject_type: Mapped[str] = mapped_column(String(16), default="public")
    # Pairwise subjects (OIDC Core §8.1) are computed per sector: this, or the redirect URIs' host.
    sector_identifier: Mapped[str | None] = mapped_column(String(255))
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(16), default="RS256")
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # RFC 9449 §5.2 client metadata: every token request must carry a DPoP proof (grants.token_request_proof).
    dpop_bound_access_tokens: Mapped[bool] = mapped_column(default=False, server_default=false())
    # RFC 9126 §6 client metadata: its authorization requests must come through the PAR endpoint.
    require_pushed_authorization_requests: Mapped[bool] = mapped_column(default=False, server_default=false())

    # Authlib's ClientMixin contract (authlib/oauth2/rfc6749/models.py), duck-typed.
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # OIDC Core §3.1.2.1: redirect_uri is required, never defaulted

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.scopes)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact string match (RFC 9700 §4.1.3)

    def check_client_secret(self, client_secret: str) -> bool:
        from .clients import verify_secret

        return verify_secret(self, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"


class AuthorizationCode(db.Model):
    """Single use: ``used_at`` is set in the transaction that issues the tokens."""

    __tablename__ = "authorization_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sso_session.id", ondelete="SET NULL"), index=True)
    redirect_uri: Mapped[str] = mapped_column(String(512))
    scope: Mapped[str] = mapped_column(String(512))
    nonce: Mapped[str | None] = mapped_column(String(255))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(8))
    auth_time: Mapped[datetime]
    acr: Mapped[str | None] = mapped_column(String(128))
    amr: Mapped[list] = mapped_column(JSON, default=list)
    # OIDC Core §5.5 ``claims`` request (as parsed), and the business acted for, carried to the tokens.
    claims_request: Mapped[dict | None] = mapped_column(JSON)
    representation_id: Mapped[int | None] = mapped_column(ForeignKey("representation.id", ondelete="SET NULL"))
    # RFC 9449 §10: the ``dpop_jkt`` of the authorization request; the code is redeemed only with a
    # DPoP proof by the key with this RFC 7638 thumbprint.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # Authlib sees a code as ``grants._CodeView`` (read with its person in one query), not as this row.


class PushedRequest(db.Model):
    """An authorization request a client pushed (RFC 9126 §2), until the authorization endpoint issues
    its code. Only a digest of the ``request_uri``'s random part is stored, like codes and tokens."""

    __tablename__ = "pushed_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    uri_digest: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict] = mapped_column(JSON)  # the authorization request's parameters, one value each
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    # When a browser first brought it to the authorization endpoint (its lifetime is then extended
    # for the person's sign-in and consent), and when a code was issued for it (single use).
    started_at: Mapped[datetime | None]
    used_at: Mapped[datetime | None]


class Token(db.Model):
    """One issuance: an access token and, optionally, a refresh token.

    Rows of one refresh chain share ``family``: reusing a rotated refresh token revokes them all.
    """

    __tablename__ = "token"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sso_session.id", ondelete="SET NULL"), index=True)
    code_id: Mapped[int | None] = mapped_column(ForeignKey("authorization_code.id", ondelete="SET NULL"), index=True)
    family: Mapped[str] = mapped_column(String(32), index=True)
    grant_type: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(512), default="")
    access_digest: Mapped[str] = mapped_column(String(64), unique=True)
    jti: Mapped[str] = mapped_column(String(64))
    access_expires_at: Mapped[datetime]
    access_revoked_at: Mapped[datetime | None]
    refresh_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    refresh_expires_at: Mapped[datetime | None]
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    offline: Mapped[bool] = mapped_column(default=False)
    auth_time: Mapped[datetime | None]
    acr: Mapped[str | None] = mapped_column(String(128))
    amr: Mapped[list] = mapped_column(JSON, default=list)
    claims_request: Mapped[dict | None] = mapped_column(JSON)
    representation_id: Mapped[int | None] = mapped_column(ForeignKey("representation.id", ondelete="SET NULL"))
    # RFC 9449 §6.1: the thumbprint (``cnf.jkt``) of the DPoP key the access token is bound to; for a
    # public client the refresh token is bound to it too (§5).
    cnf_jkt: Mapped[str | None] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)


class Consent(db.Model):
    __tablename__ = "consent"
    __table_args__ = (UniqueConstraint("person_id", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsedAssertion(db.Model):
    """``jti`` of client assertions already accepted (RFC 7523 §3 item 7), until they expire."""

    __tablename__ = "used_assertion"
    __table_args__ = (UniqueConstraint("client_id", "jti"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    jti: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(index=True)
