"""Issue and look up tokens. Access tokens are RFC 9068 JWTs; every token is stored as a SHA-256
digest only (a leaked database holds no usable token)."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from ..keystore.jwt import sign_jwt
from sqlalchemy import bindparam, insert, or_, select, update

from ..accounts.models import Person, PersonView
from ..db import db, epoch, insert_unless_present, utcnow
from ..dbread import DirectRead, DirectWrite, read_first
from ..ops.metrics import record_token
from .claims import subject_for
from .models import AuthorizationCode, Token

USER_SCOPES = frozenset({"openid", "profile", "email", "phone", "offline_access", "id_card", "org", "official"})


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class Principal:
    """Who a user-bound token is for, and how they authenticated (carried from code or refresh token)."""

    person: object
    session_id: int | None
    sid: str | None
    auth_time: datetime | None
    acr: str | None
    amr: list = field(default_factory=list)
    code_id: int | None = None
    family: str | None = None
    offline: bool = False
    representation_id: int | None = None  # the business acted for (``org`` claim)
    claims_request: dict | None = None  # OIDC Core §5.5, as parsed at /authorize
    granted_scopes: list[str] | None = None  # what the person granted at /authorize (after consent)
    cnf_jkt: str | None = None  # DPoP key thumbprint the access token is bound to (RFC 9449 §6.1)

    # Authlib calls get_user_id() in places (e.g. introspection helpers).
    def get_user_id(self):
        return self.person.id


def generate_token(grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True,
                   cnf_jkt=None):
    """Authlib token generator: a signed access token and, when allowed, an opaque refresh token.
    The access token is bound to a DPoP key (RFC 9449 §6.1) when the user's sign-in was, or, for a
    client's own token, when ``cnf_jkt`` is given."""
    cfg = current_app.config
    now = int(time.time())
    ttl = expires_in or cfg["ACCESS_TOKEN_TTL"]
    jti = secrets.token_urlsafe(16)
    claims = {
        "iss": cfg["ISSUER"], "exp": now + ttl, "iat": now, "jti": jti,
        "aud": client.client_id, "client_id": client.client_id,
        "sub": subject_for(user.person, client) if user else client.client_id,
    }
    if scope:
        claims["scope"] = scope
    if user is not None:
        if user.auth_time:
            claims["auth_time"] = epoch(user.auth_time)
        if user.acr:
            claims["acr"] = user.acr
        if user.amr:
            claims["amr"] = user.amr
        if user.sid:
            claims["sid"] = user.sid
        cnf_jkt = user.cnf_jkt
    if cnf_jkt:
        claims["cnf"] = {"jkt": cnf_jkt}
    token = {
        "token_type": "DPoP" if cnf_jkt else "Bearer",
        "access_token": sign_jwt({"typ": "at+jwt"}, claims, cfg["ACCESS_TOKEN_ALG"]),
        "expires_in": ttl,
        "_jti": jti,
    }
    if scope is not None:
        token["scope"] = scope
    if include_refresh_token and user is not None:
        token["refresh_token"] = secrets.token_urlsafe(32)
    return token


def issue_client_token(client, scope: str | None, cnf_jkt: str | None = None) -> dict:
    """The token response of an authenticated ``client_credentials`` request whose scope was checked
    (``grants.ClientCredentialsGrant`` and ``idp.oauth.lean``), bound to the key of a checked DPoP
    proof when ``cnf_jkt`` is given (RFC 9449 §5, §6.1: ``cnf.jkt``, ``token_type`` ``DPoP``)."""
    token = generate_token("client_credentials", client, scope=scope, include_refresh_token=False, cnf_jkt=cnf_jkt)
    # Stateless (RFC 9068): a client's own token has no person, session or refresh chain to keep,
    # so nothing is written; introspection checks its signature, expiry and client, and revocation
    # stores a revoked row for it (``stateless_claims``, ``revoke_stateless``).
    token.pop("_jti")
    record_token("client_credentials")
    return token


_TOKEN = Token.__table__
_PERSON = Person.__table__
_INSERT_TOKEN = insert(_TOKEN)
STORE_TOKEN = DirectWrite(_INSERT_TOKEN)  # ``token_row``'s row, with what it goes with (``dbread.write_together``)
# Read-only rows (named tuples, attribute access like the model), run directly on the driver
# (``idp.dbread``): no ORM load on every bearer request. With the person's public subject, which
# introspection reports. One lookup finds a token by either of its values (introspection, revocation).
_TOKEN_BY_DIGEST = DirectRead(
    select(*(_TOKEN.c[name] for name in (
        "id", "client_id", "person_id", "family", "grant_type", "scope", "access_digest", "jti", "access_expires_at",
        "access_revoked_at", "refresh_expires_at", "rotated_at", "revoked_at", "acr", "auth_time", "issued_at",
        "cnf_jkt")),
        _PERSON.c.sub.label("person_sub"), _PERSON.c.status.label("person_status"))
    .join_from(_TOKEN, _PERSON, _TOKEN.c.person_id == _PERSON.c.id, isouter=True)
    .where(or_(_TOKEN.c.access_digest == bindparam("digest"), _TOKEN.c.refresh_digest == bindparam("digest"))))
_ACCESS_BY_DIGEST = DirectRead(
    select(_TOKEN, _PERSON.c.sub.label("person_sub"))
    .join_from(_TOKEN, _PERSON, _TOKEN.c.person_id == _PERSON.c.id, isouter=True)
    .where(_TOKEN.c.access_digest == bindparam("digest")))
# UserInfo's token columns and the person's claim columns (``PersonView``, last), in one query.
_ACCESS_WITH_PERSON = DirectRead(
    select(_TOKEN.c.client_id, _TOKEN.c.scope, _TOKEN.c.acr, _TOKEN.c.representation_id, _TOKEN.c.access_expires_at,
           _TOKEN.c.access_revoked_at, _TOKEN.c.revoked_at, _TOKEN.c.cnf_jkt,
           *(_PERSON.c[name].label(f"person_{name}") for name in PersonView._fields))
    .join_from(_TOKEN, _PERSON, _TOKEN.c.person_id == _PERSON.c.id)
    .where(_TOKEN.c.access_digest == bindparam("digest")))
_REVOKE_ACCESS = (update(_TOKEN).where(_TOKEN.c.id == bindparam("row_id"), _TOKEN.c.access_revoked_at.is_(None))
                  .values(access_revoked_at=bindparam("when")))
_REFRESH_BY_DIGEST = select(Token).where(Token.refresh_digest == bindparam("digest"))


def save_token(token: dict, request) -> None:
    """Store digests of what ``generate_token`` made (the caller's transaction).

    A Core INSERT rather than an ORM add: this runs on every token request, and the ORM's
    unit-of-work flush cost more than the signature did.
    """
    row = token_row(token, request)
    db.session.execute(_INSERT_TOKEN, row)
    record_token(row["grant_type"])


def token_row(token: dict, request) -> dict:
    """The row that stores what ``generate_token`` made: digests of its values, never the values."""
    cfg = current_app.config
    user: Principal | None = request.user
    now = utcnow()
    refresh = token.get("refresh_token")
    offline = bool(user and user.offline)
    row = {
        "client_id": request.client.client_id, "grant_type": request.payload.grant_type or "",
        "scope": token.get("scope") or "", "access_digest": digest(token["access_token"]), "jti": token.pop("_jti"),
        "access_expires_at": now + timedelta(seconds=token["expires_in"]), "issued_at": now,
        "family": user.family if user and user.family else secrets.token_hex(16), "offline": offline, "amr": [],
        "person_id": None, "session_id": None, "code_id": None, "auth_time": None, "acr": None,
        "refresh_digest": None, "refresh_expires_at": None, "claims_request": None, "representation_id": None,
        "cnf_jkt": None,
    }
    if user is not None:
        row.update(person_id=user.person.id, session_id=user.session_id, code_id=user.code_id,
                   auth_time=user.auth_time, acr=user.acr, amr=user.amr or [], claims_request=user.claims_request,
                   representation_id=user.representation_id, cnf_jkt=user.cnf_jkt)
    if refresh:
        ttl = cfg["OFFLINE_REFRESH_TOKEN_TTL"] if offline else cfg["REFRESH_TOKEN_TTL"]
        row.update(refresh_digest=digest(refresh), refresh_expires_at=now + timedelta(seconds=ttl))
    return row


def find_access_row(value: str):
    """The stored row of an access token (a read-only Core row with the ``Token`` columns and
    ``person_sub``, its person's public subject, for introspection), or None."""
    return read_first(_ACCESS_BY_DIGEST, {"digest": digest(value)})


def find_token_row(value: str):
    """The stored row of a token presented by either of its values (access or refresh; the columns
    introspection and revocation use, and ``person_sub`` and ``person_status``), and which one it was; or
    (None, None)."""
    d = digest(value)
    row = read_first(_TOKEN_BY_DIGEST, {"digest": d})
    if row is None:
        return None, None
    return row, "access_token" if row.access_digest == d else "refresh_token"


def revoke_access(row_id: int) -> None:
    """End one access token (RFC 7009 §2.1), the rest of its grant untouched."""
    db.session.execute(_REVOKE_ACCESS, {"row_id": row_id, "when": utcnow()})


def stateless_claims(value: str) -> dict | None:
    """The claims of a ``client_credentials`` access token we signed and never stored, or None.

    Such a token is recognised by its shape: its subject is its client (``generate_token`` with no
    user) and it carries nothing of a person's sign-in (``auth_time``, ``sid``, ``acr``, ``amr``),
    which every user-bound token does and whose row is then required (a user token whose row is gone,
    e.g. its person deleted, stays inactive). It may be DPoP-bound (``cnf`` with a ``jkt``, RFC 9449
    §6.1); a bound user token also carries its sign-in (``auth_time``, ``acr``, ``amr``), so ``cnf``
    alone says nothing about who the token is for. Expiry is checked here; revocation is the
    caller's row lookup.
    """
    from ..keystore.jwt import verify_own_jwt

    claims = verify_own_jwt(value)
    if not claims or not isinstance(claims.get("client_id"), str) or claims.get("sub") != claims["client_id"]:
        return None
    if any(k in claims for k in ("auth_time", "sid", "acr", "amr")):
        return None
    if "cnf" in claims and not (isinstance(claims["cnf"], dict) and isinstance(claims["cnf"].get("jkt"), str)):
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= epoch(utcnow()) or not isinstance(claims.get("jti"), str):
        return None
    return claims


def revoke_stateless(value: str, claims: dict) -> None:
    """Store a stateless token as revoked (RFC 7009 §2.1), so the lookup by digest finds it revoked."""
    from datetime import timezone

    def at(seconds):
        return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)

    now = utcnow()
    row = {"client_id": claims["client_id"], "grant_type": "client_credentials", "scope": claims.get("scope") or "",
           "access_digest": digest(value), "jti": claims["jti"][:64], "access_expires_at": at(claims["exp"]),
           "access_revoked_at": now, "issued_at": at(claims.get("iat", epoch(now))), "family": secrets.token_hex(16),
           "offline": False, "amr": []}
    # A concurrent revocation of the same token may have inserted it first: then it is revoked already.
    insert_unless_present(Token, row, ["access_digest"])


def access_is_live(row) -> bool:
    """Not revoked (alone or with its grant) and not expired."""
    return not (row.access_revoked_at or row.revoked_at or row.access_expires_at <= utcnow())


def find_access_token(value: str | None):
    """The stored row for an access token that is still valid, else None."""
    if not value or len(value) > 4096:
        return None
    row = find_access_row(value)
    return row if row is not None and access_is_live(row) else None


def sender_ok(row, proof_jkt: str | None) -> bool:
    """RFC 9449 §7.1: the one rule for presenting a stored access token. A DPoP-bound token (its row's
    ``cnf_jkt``, §6.1) is accepted only with a checked proof (§4.3, ``dpop.check_proof`` with ``ath``)
    by the key it is bound to, never as a plain Bearer token; an unbound token only without one."""
    bound = row.cnf_jkt
    if bound is None:
        return proof_jkt is None
    return proof_jkt is not None and hmac.compare_digest(bound, proof_jkt)


def find_live_access_with_person(value: str | None):
    """A valid user access token's row (the columns UserInfo needs) and its person (a ``PersonView``),
    in one query; (None, None) if the token is unknown, revoked, expired or has no person."""
    if not value or len(value) > 4096:
        return None, None
    row = read_first(_ACCESS_WITH_PERSON, {"digest": digest(value)})
    if row is None or not access_is_live(row):
        return None, None
    return row, PersonView._make(row[-len(PersonView._fields):])


def find_refresh_token(value: str | None) -> Token | None:
    if not value or len(value) > 512:
        return None
    return db.session.execute(_REFRESH_BY_DIGEST, {"digest": digest(value)}).scalars().first()


def refresh_is_live(row: Token) -> bool:
    return (row.revoked_at is None and row.rotated_at is None and row.refresh_expires_at is not None
            and row.refresh_expires_at > utcnow())


# What ``revoke_issued`` can select by: its argument, the code's column, the token's column. A code
# carries the key it must be redeemed with (RFC 9449 §10 ``dpop_jkt``); a token, the key it is bound to.
_ISSUED_BY = (("person_id", "person_id", "person_id"), ("client_id", "client_id", "client_id"),
              ("session_id", "session_id", "session_id"),
              ("representation_id", "representation_id", "representation_id"), ("cnf_jkt", "dpop_jkt", "cnf_jkt"))


def revoke_issued(now, *, keep_offline: bool = False, **who) -> int:
    """Stop what was issued to whom the keyword arguments name (``person_id``, ``client_id``,
    ``session_id``, ``representation_id``: the business acted for, ``cnf_jkt``: the key a token is
    bound to; all must match), in the caller's transaction: the unused codes expire, then the live
    tokens are revoked (those of ``offline_access`` grants kept with ``keep_offline``). Returns how
    many tokens.

    Codes first: the code's consumption is guarded on its expiry (``grants._CONSUME_CODE``), so an
    exchange racing this either waits for the code's row and finds it expired, or consumed it first
    and its token is there when the tokens are revoked."""
    code_where = [AuthorizationCode.used_at.is_(None), AuthorizationCode.expires_at > now]
    token_where = [Token.revoked_at.is_(None)]
    for name, code_column, token_column in _ISSUED_BY:
        value = who.pop(name, None)
        if value is not None:
            code_where.append(getattr(AuthorizationCode, code_column) == value)
            token_where.append(getattr(Token, token_column) == value)
    if who:
        raise TypeError(f"revoke_issued() cannot select by {', '.join(who)}")
    if len(token_where) == 1:
        raise TypeError("revoke_issued() needs whom to revoke for")
    if keep_offline:
        token_where.append(Token.offline.is_(False))
    db.session.execute(update(AuthorizationCode).where(*code_where).values(expires_at=now))
    return db.session.execute(update(Token).where(*token_where).values(revoked_at=now)).rowcount


def revoke_family(family: str) -> int:
    """Revoke every token of a refresh chain (reuse detected, or the client revoked it)."""
    now = utcnow()
    res = db.session.execute(update(Token).where(Token.family == family, Token.revoked_at.is_(None)).values(revoked_at=now))
    return res.rowcount


def revoke_from_code(code_id: int) -> int:
    """Revoke what a code issued (RFC 6749 §4.1.2: a replayed code SHOULD revoke its tokens)."""
    families = db.session.execute(select(Token.family).where(Token.code_id == code_id)).scalars().all()
    return sum(revoke_family(f) for f in set(families))


def mark_rotated(row: Token) -> bool:
    """Atomically retire a refresh token; False if another request got there first."""
    res = db.session.execute(update(Token).where(Token.id == row.id, Token.rotated_at.is_(None), Token.revoked_at.is_(None))
                             .values(rotated_at=utcnow()))
    return res.rowcount == 1
