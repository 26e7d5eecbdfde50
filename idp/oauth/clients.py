"""The client registry: register subsites, check their secrets."""
from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import bindparam, select

from ..audit.service import record
from ..config import is_loopback
from ..db import db, transaction, utcnow
from ..errors import Conflict, DomainError, NotFound
from .models import Client

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
SECRET_METHODS = AUTH_METHODS[:2]  # those with a client secret
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials",
               "urn:ietf:params:oauth:grant-type:jwt-bearer")  # the last: officials' certificate login
SCOPES = ("openid", "profile", "email", "phone", "offline_access", "id_card", "org", "official")
# id_card (the resident ID number) and official (staff memberships) only when registered for explicitly.
DEFAULT_SCOPES = ("openid", "profile", "email", "phone", "offline_access", "org")
ID_TOKEN_ALGS = ("RS256", "ES256")
SUBJECT_TYPES = ("public", "pairwise")
_HOST_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")


def _random_token(nbytes: int) -> str:
    """URL-safe random text that never starts with '-' (so it survives being a command-line argument)."""
    while True:
        value = secrets.token_urlsafe(nbytes)
        if not value.startswith("-"):
            return value


def _secret_key() -> bytes:
    return current_app.extensions["idp.client_secret_key"]


def digest_secret(secret: str) -> str:
    """A fast keyed hash: client secrets carry 256 bits of entropy, so no password hash is needed."""
    return hmac.digest(_secret_key(), secret.encode(), "sha256").hex()  # one C call (OpenSSL)


def verify_secret(client: Client, secret: str | None) -> bool:
    """The client's secret, or until ``previous_secret_expires_at`` the one it replaced (``rotate_secret``)."""
    if not client.secret_digest or not secret or len(secret) > 512:
        return False
    presented = digest_secret(secret)
    if hmac.compare_digest(client.secret_digest, presented):
        return True
    previous, until = client.previous_secret_digest, client.previous_secret_expires_at
    return previous is not None and until is not None and until > utcnow() and hmac.compare_digest(previous, presented)


def check_uri(uri: str, what: str) -> str:
    """Absolute https URI without fragment; http only on loopback (RFC 9700 §2.1, §4.1.1)."""
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise DomainError(f"{what} {uri!r} is not a valid URI") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DomainError(f"{what} {uri!r} must be an absolute http(s) URI")
    if parts.fragment or "#" in uri:
        raise DomainError(f"{what} {uri!r} must not contain a fragment")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise DomainError(f"{what} {uri!r} must use https (http is allowed on loopback only)")
    if len(uri) > 512:
        raise DomainError(f"{what} is longer than 512 characters")
    return uri


_NEEDS_REDIRECT = "a client using authorization_code needs at least one redirect URI"


def _checked_name(name: str | None) -> str:
    name = (name or "").strip()
    if not 1 <= len(name) <= 128:
        raise DomainError("the client name must have 1-128 characters")
    return name


def _checked_scopes(scopes) -> list[str]:
    scopes = list(dict.fromkeys(scopes))
    for s in scopes:
        if s not in SCOPES:
            raise DomainError(f"unknown scope {s!r}; use any of {', '.join(SCOPES)}")
    return scopes


def _checked_uris(uris, what: str) -> list[str]:
    return [check_uri(u, what) for u in dict.fromkeys(uris)]


def _checked_optional_uri(uri: str | None, what: str) -> str | None:
    return check_uri(uri, what) if uri else None


def create_client(*, name: str, redirect_uris: list[str], post_logout_redirect_uris: list[str] = (),
                  backchannel_logout_uri: str | None = None, frontchannel_logout_uri: str | None = None,
                  auth_method: str = "client_secret_basic",
                  grant_types: list[str] | None = None, scopes: list[str] | None = None, first_party: bool = False,
                  jwks: dict | None = None, id_token_alg: str = "RS256", subject_type: str = "public",
                  sector_identifier: str | None = None, dpop_bound_access_tokens: bool = False,
                  require_pushed_authorization_requests: bool = False, actor: str = "cli",
                  client_id: str | None = None) -> tuple[Client, str | None]:
    """Register a client; returns it and its secret (shown once, stored only as a keyed hash).
    ``dpop_bound_access_tokens`` (RFC 9449 §5.2): its token requests are refused without a DPoP proof;
    ``require_pushed_authorization_requests`` (RFC 9126 §6): its authorization requests without a
    pushed ``request_uri``."""
    name = _checked_name(name)
    if auth_method not in AUTH_METHODS:
        raise DomainError(f"unknown auth method {auth_method!r}; use one of {', '.join(AUTH_METHODS)}")
    grant_types = list(dict.fromkeys(grant_types or ["authorization_code", "refresh_token"]))
    for g in grant_types:
        if g not in GRANT_TYPES:
            raise DomainError(f"unknown grant type {g!r}; use one of {', '.join(GRANT_TYPES)}")
    scopes = _checked_scopes(scopes or DEFAULT_SCOPES)
    if "authorization_code" in grant_types and not redirect_uris:
        raise DomainError(_NEEDS_REDIRECT)
    if auth_method == "none" and "client_credentials" in grant_types:
        raise DomainError("a public client (auth method none) cannot use client_credentials")
    if auth_method == "private_key_jwt":
        jwks = _check_jwks(jwks)
    if id_token_alg not in ID_TOKEN_ALGS:
        raise DomainError(f"id_token_signed_response_alg must be one of {', '.join(ID_TOKEN_ALGS)}")
    redirect_uris = _checked_uris(redirect_uris, "redirect URI")
    post_logout = _checked_uris(post_logout_redirect_uris, "post-logout redirect URI")
    backchannel_logout_uri = _checked_optional_uri(backchannel_logout_uri, "back-channel logout URI")
    frontchannel_logout_uri = _checked_optional_uri(frontchannel_logout_uri, "front-channel logout URI")
    sector = _sector(subject_type, sector_identifier, redirect_uris)

    secret = _random_token(32) if auth_method in SECRET_METHODS else None
    client = Client(
        client_id=client_id or _random_token(18), name=name,
        secret_digest=digest_secret(secret) if secret else None,
        redirect_uris=redirect_uris, post_logout_redirect_uris=post_logout,
        backchannel_logout_uri=backchannel_logout_uri, frontchannel_logout_uri=frontchannel_logout_uri,
        token_endpoint_auth_method=auth_method,
        grant_types=grant_types, scopes=scopes, first_party=first_party, jwks=jwks,
        id_token_signed_response_alg=id_token_alg, subject_type=subject_type, sector_identifier=sector,
        dpop_bound_access_tokens=bool(dpop_bound_access_tokens),
        require_pushed_authorization_requests=bool(require_pushed_authorization_requests),
    )
    forget_client(client.client_id)
    with transaction():
        db.session.add(client)
        db.session.flush()
        record("client.created", actor=actor, target=f"client:{client.client_id}",
               detail={"name": name, "auth_method": auth_method, "grant_types": grant_types,
                       "subject_type": subject_type, "dpop_bound_access_tokens": client.dpop_bound_access_tokens,
                       "require_pushed_authorization_requests": client.require_pushed_authorization_requests})
    return client, secret


def _registered(client_id: str) -> Client:
    client = db.session.execute(select(Client).where(Client.client_id == client_id)).scalars().first()
    if client is None:
        raise NotFound(f"no client {client_id!r}")
    return client


def set_dpop_bound(client_id: str, required: bool, *, actor: str = "cli") -> Client:
    """Change a client's ``dpop_bound_access_tokens`` (RFC 9449 §5.2)."""
    return _set_flag(client_id, "dpop_bound_access_tokens", required, actor)


def set_par_required(client_id: str, required: bool, *, actor: str = "cli") -> Client:
    """Change a client's ``require_pushed_authorization_requests`` (RFC 9126 §6)."""
    return _set_flag(client_id, "require_pushed_authorization_requests", required, actor)


def _set_flag(client_id: str, name: str, value: bool, actor: str) -> Client:
    """Change one of a client's yes/no registration values. Other nodes see the change within
    ``CLIENT_CACHE_TTL`` seconds (their cached registration); this process at once."""
    client = _registered(client_id)
    with transaction():
        setattr(client, name, bool(value))
        record("client.updated", actor=actor, target=f"client:{client.client_id}", detail={name: bool(value)})
    forget_client(client.client_id)
    return client


def update_client(client_id: str, *, name: str | None = None, redirect_uris: list[str] | None = None,
                  post_logout_redirect_uris: list[str] | None = None, backchannel_logout_uri: str | None = None,
                  frontchannel_logout_uri: str | None = None, scopes: list[str] | None = None,
                  actor: str = "cli") -> Client:
    """Change a subsite's registration (it moved to a new address, gained a logout endpoint, ...):
    each value given replaces the registered one (an empty logout URI removes it); the rest stays.
    Checked as at registration. Its ``client_id``, secret, subject type and pairwise sector do not
    change, so the subjects people have at the subsite stay the same. Other nodes see the change
    within ``CLIENT_CACHE_TTL`` seconds; this process at once."""
    client = _registered(client_id)
    changes: dict = {}
    if name is not None:
        changes["name"] = _checked_name(name)
    if redirect_uris is not None:
        changes["redirect_uris"] = _checked_uris(redirect_uris, "redirect URI")
        if "authorization_code" in client.grant_types and not changes["redirect_uris"]:
            raise DomainError(_NEEDS_REDIRECT)
    if post_logout_redirect_uris is not None:
        changes["post_logout_redirect_uris"] = _checked_uris(post_logout_redirect_uris, "post-logout redirect URI")
    if backchannel_logout_uri is not None:
        changes["backchannel_logout_uri"] = _checked_optional_uri(backchannel_logout_uri, "back-channel logout URI")
    if frontchannel_logout_uri is not None:
        changes["frontchannel_logout_uri"] = _checked_optional_uri(frontchannel_logout_uri, "front-channel logout URI")
    if scopes is not None:
        changes["scopes"] = _checked_scopes(scopes)
    changes = {k: v for k, v in changes.items() if getattr(client, k) != v}
    if not changes:
        raise DomainError("nothing to change: the registration already says so")
    with transaction():
        for key, value in changes.items():
            setattr(client, key, value)
        record("client.updated", actor=actor, target=f"client:{client.client_id}", detail=changes)
    forget_client(client.client_id)
    return client


def rotate_secret(client_id: str, *, grace_seconds: int, actor: str = "cli") -> tuple[Client, str]:
    """A new secret for the client (shown once, stored as a keyed hash); the one it replaces is still
    accepted for ``grace_seconds`` (0: not at all), so the subsite can deploy the new one without an
    outage. A leaked secret is rotated with no grace. Other nodes see the change within
    ``CLIENT_CACHE_TTL`` seconds; this process at once."""
    if not 0 <= grace_seconds <= 30 * 86400:
        raise DomainError("the grace period must be between 0 and 30 days")
    client = _registered(client_id)
    if client.token_endpoint_auth_method not in SECRET_METHODS:
        raise DomainError(f"client {client_id!r} authenticates with {client.token_endpoint_auth_method}, not a secret")
    secret = _random_token(32)
    now = utcnow()
    with transaction():
        client.previous_secret_digest = client.secret_digest if grace_seconds else None
        client.previous_secret_expires_at = now + timedelta(seconds=grace_seconds) if grace_seconds else None
        client.secret_digest = digest_secret(secret)
        record("client.secret_rotated", actor=actor, target=f"client:{client.client_id}",
               detail={"grace_seconds": grace_seconds})
    forget_client(client.client_id)
    return client, secret


def set_status(client_id: str, active: bool, *, actor: str = "cli") -> dict:
    """Disable a subsite (it can no longer authenticate or be authorized for; every token issued to
    it is revoked and its unused codes expire), or enable it again (its old tokens stay revoked).
    Other nodes stop serving a disabled client within ``CLIENT_CACHE_TTL`` seconds; this process at once."""
    from .tokens import revoke_issued

    client = _registered(client_id)
    status = "active" if active else "disabled"
    if client.status == status:
        raise Conflict(f"client {client_id!r} is already {status}")
    now, revoked = utcnow(), 0
    with transaction():
        client.status = status
        if not active:
            revoked = revoke_issued(now, client_id=client_id)
        record("client.enabled" if active else "client.disabled", actor=actor, target=f"client:{client_id}",
               detail={} if active else {"tokens_revoked": revoked})
    forget_client(client_id)
    return {"client_id": client_id, "status": status, **({} if active else {"tokens_revoked": revoked})}


OFFICIALS_TOOL_CLIENT_ID = "sealctl"  # the well-known public client of the officials' tool (clients/sealctl)


def ensure_officials_tool_client() -> bool:
    """Register the officials' tool as a public client (``sealctl``, JWT bearer grant only) if it is
    missing; True when it was created. Public: the tool holds no secret; the official's certified key
    signs every assertion, so the well-known ``client_id`` gives nothing away."""
    from sqlalchemy.exc import IntegrityError

    if get_client(OFFICIALS_TOOL_CLIENT_ID) is not None:
        return False
    try:
        create_client(name="官员工具 sealctl / officials' tool", redirect_uris=[], auth_method="none",
                      grant_types=[GRANT_TYPES[-1]], scopes=["openid"], client_id=OFFICIALS_TOOL_CLIENT_ID,
                      actor="init")
    except IntegrityError:  # another node running `idp init` at the same moment registered it first
        db.session.rollback()
        return False
    return True


def _sector(subject_type: str, sector_identifier: str | None, redirect_uris: list[str]) -> str | None:
    """The sector a pairwise client's subjects are computed for (OIDC Core §8.1), fixed at registration
    so that later changes of redirect URIs never change the subjects a subsite knows."""
    if subject_type not in SUBJECT_TYPES:
        raise DomainError(f"unknown subject type {subject_type!r}; use {' or '.join(SUBJECT_TYPES)}")
    if subject_type == "public":
        if sector_identifier:
            raise DomainError("a sector identifier is only for pairwise clients (--subject-type pairwise)")
        return None
    if sector_identifier:
        value = sector_identifier.strip().lower()
        if "://" in value:  # a sector_identifier_uri (OIDC Registration §2): its host is the sector
            parts = urlsplit(value)
            if parts.scheme != "https" or not parts.hostname:
                raise DomainError("the sector identifier must be a host name or an https URI")
            value = parts.hostname
        if not _HOST_RE.match(value):
            raise DomainError(f"the sector identifier {sector_identifier!r} is not a host name")
        return value
    hosts = sorted({urlsplit(u).hostname for u in redirect_uris})
    if len(hosts) != 1:
        where = f"span several hosts ({', '.join(hosts)})" if hosts else "are missing"
        raise DomainError(f"a pairwise client needs one sector: its redirect URIs {where}; "
                          "give a sector identifier (--sector-identifier)")
    return hosts[0]


def sector_of(client: Client) -> str:
    """The sector identifier pairwise subjects are computed for (OIDC Core §8.1)."""
    if client.sector_identifier:
        return client.sector_identifier
    hosts = {urlsplit(u).hostname for u in client.redirect_uris or []}
    # Registration refuses pairwise clients without one sector; a client registered otherwise
    # (by hand) still gets subjects of its own rather than the public one.
    return hosts.pop() if len(hosts) == 1 else f"client:{client.client_id}"


def _check_jwks(jwks) -> dict:
    from joserfc.jwk import KeySet

    if not isinstance(jwks, dict) or not jwks.get("keys"):
        raise DomainError("private_key_jwt needs the client's public keys (a JWKS with at least one key)")
    try:
        ks = KeySet.import_key_set(jwks)
    except Exception as exc:  # joserfc raises several types for malformed keys
        raise DomainError("the JWKS is not valid") from exc
    for k in ks.keys:
        if k.is_private:
            raise DomainError("the JWKS contains a private key; register public keys only")
    return {"keys": [k.as_dict(private=False) for k in ks.keys]}


# Built once: constructing a statement costs more than running it (token endpoint hot path).
_CLIENT_BY_ID = select(Client.__table__).where(Client.__table__.c.client_id == bindparam("client_id"))
_CACHE_KEY = "idp.client_cache"


class _ClientCache:
    """Registrations read in the last ``CLIENT_CACHE_TTL`` seconds, per process (and per app).

    Every token, introspection and userinfo request needs its client; reading it once per TTL
    instead of once per request takes a query and an ORM load off each of them. Entries are
    transient ``Client`` objects (never added to a session), shared read-only between threads.
    Only active clients are kept: an unknown id is asked of the database every time, so a client
    registered on another node works at once; one disabled or changed there is seen here within
    the TTL (README "Configuration", ``IDP_CLIENT_CACHE_TTL``)."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self.entries: dict[str, tuple[float, Client]] = {}
        self.lock = threading.Lock()

    def get(self, client_id: str) -> Client | None:
        hit = self.entries.get(client_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        row = db.session.execute(_CLIENT_BY_ID, {"client_id": client_id}).mappings().first()
        if row is None or row["status"] != "active":
            self.forget(client_id)
            return None
        client = Client(**row)
        if self.ttl > 0:
            with self.lock:
                self.entries[client_id] = (time.monotonic() + self.ttl, client)
        return client

    def forget(self, client_id: str) -> None:
        with self.lock:
            self.entries.pop(client_id, None)


def _cache() -> _ClientCache:
    ext = current_app.extensions
    cache = ext.get(_CACHE_KEY)
    if cache is None:
        cache = ext.setdefault(_CACHE_KEY, _ClientCache(float(current_app.config["CLIENT_CACHE_TTL"])))
    return cache


def forget_client(client_id: str) -> None:
    """Drop this process's cached registration of ``client_id`` (after changing it here)."""
    _cache().forget(client_id)


def get_client(client_id: str | None) -> Client | None:
    """The active client ``client_id`` (a read-only copy, possibly up to ``CLIENT_CACHE_TTL`` s old), or None."""
    if not client_id or not isinstance(client_id, str) or len(client_id) > 64:
        return None
    return _cache().get(client_id)


def list_clients() -> list[Client]:
    return list(db.session.execute(select(Client).order_by(Client.id)).scalars())
