"""Grants and extensions, each overriding only what our storage and policy need."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from datetime import timedelta

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import grants as oidc_grants
from authlib.oidc.core.util import create_half_hash
from flask import current_app
from joserfc.jwk import KeySet
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from ..accounts.models import Person, PersonView
from ..audit.service import record
from ..db import db, epoch, utcnow
from ..dbread import DirectRead, DirectWrite, NothingWritten, read_first, write_one, write_together
from ..ops.metrics import record_token
from ..sessions.models import SessionClient, SsoSession
from ..sessions.service import note_client, note_client_insert
from . import claims as release, dpop, tokens
from .consent import effective_scopes
from .models import AuthorizationCode, Token, UsedAssertion

TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


def _security_event(action: str, client_id: str, detail: dict) -> None:
    """Record an attack signal and commit it even though the request itself fails."""
    record(action, actor=f"client:{client_id}", outcome="refused", detail=detail)
    db.session.commit()


def _principal(person: PersonView, session_id: int | None, sid: str | None, **how) -> tokens.Principal | None:
    """The principal a stored code or refresh token speaks for; None if the account is not active."""
    if not person.active:
        return None
    return tokens.Principal(person=person, session_id=session_id, sid=sid, **how)


_CODE, _HOLDER, _SSO = AuthorizationCode.__table__, Person.__table__, SsoSession.__table__
# A code with what the exchange needs besides: its person's claim columns, its session's public id and
# whether that session has ended.
_CODE_WITH_HOLDER = DirectRead(
    select(*_CODE.c, _SSO.c.sid.label("session_sid"), _SSO.c.ended_at.label("session_ended_at"),
           *(_HOLDER.c[name].label(f"holder_{name}") for name in PersonView._fields))
    .join_from(_CODE, _HOLDER, _CODE.c.person_id == _HOLDER.c.id)
    .outerjoin(_SSO, _SSO.c.id == _CODE.c.session_id)
    .where(_CODE.c.code_digest == bindparam("digest")))
_STORE_CODE = DirectWrite(_CODE.insert())
# A person's claim columns and, when the grant has one, their session's public id.
_HOLDER_WITH_SID = DirectRead(
    select(*(_HOLDER.c[name] for name in PersonView._fields), _SSO.c.sid.label("session_sid"))
    .select_from(_HOLDER).outerjoin(_SSO, _SSO.c.id == bindparam("session_id"))
    .where(_HOLDER.c.id == bindparam("person_id")))
# Consumed only while unused and unexpired, checked by the write itself: ``end_sessions`` expires a
# session's unused codes, and a redemption racing it waits for the code's row and then finds it expired.
_CONSUME_CODE = DirectWrite(update(_CODE).where(_CODE.c.id == bindparam("code_id"), _CODE.c.used_at.is_(None),
                                                _CODE.c.expires_at > bindparam("when"))
                            .values(used_at=bindparam("when")))


def _consume_with_token():
    """PostgreSQL: the code's consumption and its token row in one statement (a data-modifying
    ``WITH``): the row is inserted only if the guarded UPDATE consumed the code, so a second
    redemption inserts nothing (row count 0) and nothing is written; nor does one whose code expired
    meanwhile (``end_sessions`` expires a session's unused codes, ``_CONSUME_CODE``)."""
    token = Token.__table__
    consumed = (update(_CODE).where(_CODE.c.id == bindparam("consume_id"), _CODE.c.used_at.is_(None),
                                    _CODE.c.expires_at > bindparam("consume_when"))
                .values(used_at=bindparam("consume_when")).returning(_CODE.c.id).cte("consumed"))
    columns = [c for c in token.c if c.key != "id"]  # those ``token_row`` leaves out are NULL, as in an INSERT
    # The token's values are named ``t_<column>``: parameters named like a column of the code's table
    # would also be SET by the UPDATE (SQLAlchemy compiles an UPDATE with the parameters' names).
    values = select(*(bindparam(f"t_{c.key}", None, type_=c.type, required=False) for c in columns))
    return token.insert().from_select([c.key for c in columns], values.select_from(consumed))


_CONSUME_WITH_TOKEN = DirectWrite(_consume_with_token())
# Nothing consumed: a concurrent redemption won, or the code expired (its session ended) meanwhile.
_NOT_CONSUMED = "The authorization code has already been used or is no longer valid."


def _code_noting_client(dialect: str):
    """PostgreSQL: a code and its session's entry in the client list (``note_client``'s INSERT ... ON
    CONFLICT DO NOTHING) in one statement, a data-modifying ``WITH`` (PostgreSQL runs it to completion
    though nothing reads it). Both INSERTs take their values from one set of parameters and share
    column names (``client_id``, ``session_id``), so the values are named ``c_<column>`` (the code)
    and ``n_<column>`` (the entry)."""
    entry = SessionClient.__table__
    noted = note_client_insert(dialect).values(
        {c.key: bindparam(f"n_{c.key}") for c in entry.c if c.key != "id"}).cte("noted")
    return _CODE.insert().values({c.key: bindparam(f"c_{c.key}") for c in _CODE.c if c.key != "id"}).add_cte(noted)


_CODE_NOTING_CLIENT = DirectWrite(_code_noting_client)


class _CodeView:
    """Authlib's AuthorizationCodeMixin over a stored code, read with its holder in one query: the
    code's columns as attributes, ``holder`` (a ``PersonView``) and ``session_sid``."""

    __slots__ = ("row", "holder")

    def __init__(self, row):
        self.row = row
        self.holder = PersonView._make(row[-len(PersonView._fields):])

    def __getattr__(self, name):
        return getattr(self.row, name)

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce


def token_request_proof(request, bound_to: str | None = None, mismatch: str = "", *,
                        endpoint: str = "/token") -> str | None:
    """RFC 9449 §5 at the token endpoint: the RFC 7638 thumbprint of the request's DPoP proof, checked
    (§4.3, ``dpop.check_proof``) after the client authenticated; None when the request carries no
    ``DPoP`` header and nothing requires one. ``bound_to``: the thumbprint the proof's key must have
    (a ``dpop_jkt`` code, §10; a public client's bound refresh token, §5), ``mismatch`` the message
    otherwise. A missing or bad proof, or another key, is ``invalid_dpop_proof`` (§5), audited.

    A client registered with ``dpop_bound_access_tokens`` (§5.2) needs a proof on every token request:
    "the authorization server MUST reject token requests from this client that do not contain the
    DPoP header" — with ``invalid_dpop_proof``, as for any other missing proof here. The officials'
    JWT bearer grant always needs one (``official_grant``); the lean path declines for such a client.

    ``endpoint="/par"``: the same check of a pushed authorization request's proof (§10.1), where
    ``bound_to`` is the pushed ``dpop_jkt`` and nothing requires a proof."""
    cid = request.client.client_id
    if "DPoP" not in request.headers:  # present, even empty: a bound token asked for
        if request.client.dpop_bound_access_tokens and endpoint == "/token":
            _security_event("dpop.refused", cid, {"reason": "proof_required", "path": endpoint})
            raise dpop.InvalidDPoPProofError(
                description="This client is registered for DPoP-bound tokens only: send a DPoP proof.")
        if bound_to is None:
            return None
    try:
        jkt = dpop.check_proof(request.headers, method="POST", url=current_app.config["ISSUER"] + endpoint)
    except dpop.DPoPError as exc:
        if exc.audited:
            _security_event("dpop.refused", cid, {"reason": f"proof_{exc.reason}", "path": endpoint})
        raise exc.token_error(description=str(exc)) from exc  # invalid_dpop_proof, or use_dpop_nonce (§8)
    if bound_to is not None and not hmac.compare_digest(jkt, bound_to):
        _security_event("dpop.refused", cid, {"reason": "proof_key_mismatch", "path": endpoint})
        raise dpop.InvalidDPoPProofError(description=mismatch)
    return jkt


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """RFC 6749 §4.1 with PKCE; DPoP-bound tokens when the code exchange carries a proof (RFC 9449 §5).

    The proof is checked after Authlib's checks of the client, the code, ``redirect_uri`` and PKCE
    (``validate_token_request`` and its hooks) and before ``create_token_response`` stores the
    tokens and consumes the code (``save_token``, then ``delete_authorization_code``): a refused
    proof leaves the code unused, so the client may retry with a good proof before it expires
    (the code is still bound to the client, its PKCE verifier and, with ``dpop_jkt``, its key)."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def validate_token_request(self):
        super().validate_token_request()  # client, code, redirect_uri; PKCE in the hook
        self.request.cnf_jkt = token_request_proof(
            self.request, bound_to=self.request.authorization_code.dpop_jkt,
            mismatch="The DPoP proof's key is not the one named by 'dpop_jkt' in the authorization request.")

    @staticmethod
    def validate_authorization_redirect_uri(request, client):
        # Checked by the authorization view before Authlib runs (exact match, error page otherwise);
        # re-checked here with a fixed message (Authlib's echoes the URI into error_description).
        uri = request.payload.redirect_uri
        if not uri or not client.check_redirect_uri(uri):
            raise InvalidRequestError("Invalid 'redirect_uri'.")
        return uri

    def generate_authorization_code(self):
        # 256 random bits in one call (Authlib's default draws 48 characters one system call each).
        return secrets.token_urlsafe(32)

    def save_authorization_code(self, code, request):
        cfg = current_app.config
        user: tokens.Principal = request.user
        data = request.payload.data
        now = utcnow()
        row = {
            "code_digest": tokens.digest(code), "client_id": request.client.client_id, "person_id": user.person.id,
            "session_id": user.session_id, "redirect_uri": request.payload.redirect_uri,
            "scope": " ".join(effective_scopes(request.scope or "", data.get("prompt")) if user.granted_scopes is None
                              else user.granted_scopes),
            "nonce": data.get("nonce"), "code_challenge": data.get("code_challenge"),
            "code_challenge_method": data.get("code_challenge_method"), "auth_time": user.auth_time,
            "acr": user.acr, "amr": user.amr or [], "claims_request": user.claims_request,
            "representation_id": user.representation_id, "dpop_jkt": data.get("dpop_jkt"), "created_at": now,
            "expires_at": now + timedelta(seconds=cfg["CODE_TTL"]), "used_at": None,
        }
        if not user.session_id:
            write_one(_STORE_CODE, row)
        elif db.engine.dialect.name == "postgresql":  # one statement, one round trip (``_code_noting_client``)
            _, entry, _ = note_client(user.session_id, request.client.client_id)
            write_one(_CODE_NOTING_CLIENT, {f"c_{k}": v for k, v in row.items()} | {f"n_{k}": v for k, v in entry.items()})
        else:
            write_together((_STORE_CODE, row, False), note_client(user.session_id, request.client.client_id))

    def query_authorization_code(self, code, client):
        if not isinstance(code, str) or len(code) > 256:
            return None
        row = read_first(_CODE_WITH_HOLDER, {"digest": tokens.digest(code)})
        if row is None or row.client_id != client.client_id:
            return None
        if row.used_at is not None:
            revoked = tokens.revoke_from_code(row.id)
            _security_event("code.replayed", client.client_id, {"tokens_revoked": revoked})
            return None
        if row.session_id is not None and (row.session_sid is None or row.session_ended_at is not None):
            # Its sign-in session ended (a logout, expiry, the account disabled) after the code was
            # issued: the subsite was told of the logout, so it must not sign the person in now. Not
            # a replay: the code stays unused, and nothing is revoked. (``end_sessions`` also expires
            # the session's unused codes, which settles a redemption racing the logout.)
            raise InvalidGrantError("The sign-in session this code was issued in has ended.")
        if row.expires_at <= utcnow():
            return None
        return _CodeView(row)

    def create_token_response(self):
        """Authlib's, with its write moved last. Authlib stores the tokens and consumes the code
        (``save_token``, ``delete_authorization_code``) before its after-hooks sign the ID token
        (``OpenIDCode.process_token``); here those two only prepare the write, which runs once the
        response is complete: a failure while signing leaves the code unused and nothing stored, so
        the client's retry is answered rather than taken for a replay (which revokes, §4.1.2)."""
        result = super().create_token_response()
        self._consume_and_store(self.request.consumed_code)
        return result

    def save_token(self, token):
        # Stored with the code's consumption, in one transaction (``_consume_and_store``).
        self.request.token_row = tokens.token_row(token, self.request)

    def delete_authorization_code(self, authorization_code):
        self.request.consumed_code = authorization_code  # consumed last (``create_token_response``)

    def _consume_and_store(self, authorization_code):
        # Consumed with the storing of the tokens, all or nothing: on PostgreSQL in one statement (one
        # round trip), elsewhere in one transaction. A concurrent redemption loses here (the code was
        # read outside it, so this guarded UPDATE is what makes redemption single-use).
        row = self.request.token_row
        if db.engine.dialect.name == "postgresql":  # one statement, one round trip (``_consume_with_token``)
            params = {f"t_{k}": v for k, v in row.items()} | {"consume_id": authorization_code.id, "consume_when": utcnow()}
            if write_one(_CONSUME_WITH_TOKEN, params) != 1:
                raise InvalidGrantError(_NOT_CONSUMED)
        else:
            try:
                write_together((_CONSUME_CODE, {"code_id": authorization_code.id, "when": utcnow()}, True),
                               (tokens.STORE_TOKEN, row, False))
            except NothingWritten:
                raise InvalidGrantError(_NOT_CONSUMED) from None
        record_token(row["grant_type"])

    def authenticate_user(self, authorization_code):
        c = authorization_code
        return _principal(c.holder, c.session_id, c.session_sid, auth_time=c.auth_time, acr=c.acr, amr=c.amr,
                          code_id=c.id, offline="offline_access" in c.scope.split(),
                          representation_id=c.representation_id, claims_request=c.claims_request,
                          cnf_jkt=self.request.cnf_jkt)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """RFC 6749 §6 with rotation; DPoP per RFC 9449 §5. A refresh token issued to a public client
    together with a DPoP-bound access token is bound to that key too ("the binding MUST be validated
    when the refresh token is later presented"): it is redeemed only with a proof by the same key,
    and the new tokens stay bound to it. A confidential client's refresh token is not bound (it is
    sender-constrained by the client's authentication): each new access token is bound to the key
    of the proof sent with that request, if any. The RFC names no error for a proof by the wrong key;
    like a missing or bad proof (§5) it is ``invalid_dpop_proof``."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def validate_token_request(self):
        super().validate_token_request()  # client, refresh token, scope
        row = self.request.refresh_token.row
        self.request.cnf_jkt = token_request_proof(
            self.request, bound_to=row.cnf_jkt if self.request.client.is_public else None,
            mismatch="The refresh token is bound to another DPoP key.")

    def authenticate_refresh_token(self, refresh_token):
        row = tokens.find_refresh_token(refresh_token)
        if row is None:
            return None
        if row.rotated_at is not None and row.revoked_at is None:
            # RFC 9700 §4.14.2: a rotated refresh token presented again means one copy was stolen.
            revoked = tokens.revoke_family(row.family)
            _security_event("refresh_token.reused", row.client_id, {"tokens_revoked": revoked})
            return None
        if not tokens.refresh_is_live(row):
            return None
        if not row.offline and row.session_id is not None:
            s = db.session.get(SsoSession, row.session_id)
            if s is None or s.ended_at is not None:
                return None
        return _TokenView(row)

    def authenticate_user(self, refresh_token):
        r = refresh_token.row
        found = read_first(_HOLDER_WITH_SID, {"person_id": r.person_id, "session_id": r.session_id})
        if found is None:
            return None
        person = PersonView._make(found[:len(PersonView._fields)])
        return _principal(person, r.session_id, found.session_sid, auth_time=r.auth_time, acr=r.acr, amr=r.amr,
                          family=r.family, offline=r.offline, representation_id=r.representation_id,
                          claims_request=r.claims_request, cnf_jkt=self.request.cnf_jkt)

    def revoke_old_credential(self, refresh_token):
        if not tokens.mark_rotated(refresh_token.row):
            raise InvalidGrantError("The refresh token has already been used.")


class _TokenView:
    """Authlib's TokenMixin over a stored row."""

    def __init__(self, row):
        self.row = row

    def check_client(self, client):
        return hmac.compare_digest(self.row.client_id, client.client_id)

    def get_scope(self):
        return self.row.scope


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """RFC 6749 §4.4, stateless tokens (``tokens.issue_client_token``), DPoP-bound when the request
    carries a proof (RFC 9449 §5): the proof is checked (§4.3, ``dpop.check_proof``) after the client
    authenticated, and the token carries its key's thumbprint (``cnf.jkt``, §6.1), ``token_type``
    ``DPoP``. A bad proof is ``invalid_dpop_proof`` (§5) and nothing is issued; no proof, a Bearer token."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def validate_requested_scope(self):
        if not client_credentials_scope_ok(self.request.client, self.request.payload.scope):
            raise InvalidScopeError()

    def validate_token_request(self):
        super().validate_token_request()  # client authentication, grant type, scope
        self.request.cnf_jkt = token_request_proof(self.request)

    @hooked
    def create_token_response(self):
        token = tokens.issue_client_token(self.request.client, self.request.payload.scope,
                                          cnf_jkt=self.request.cnf_jkt)
        return 200, token, self.TOKEN_RESPONSE_HEADER


def client_credentials_scope_ok(client, scope: str | None) -> bool:
    """Client credentials carry no user, so user scopes (openid, profile, ...) are never granted;
    the rest must be among the client's registered scopes (RFC 6749 §3.3)."""
    requested = set((scope or "").split())
    return not requested & tokens.USER_SCOPES and requested <= set(client.scopes)


def compare_s256(verifier: str, challenge: str) -> bool:
    computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return hmac.compare_digest(computed, challenge)


class StrictPKCE(CodeChallenge):
    """PKCE with S256 only (RFC 7636 §4.2); required for public clients; a missing method is an error."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    CODE_CHALLENGE_METHODS = {"S256": compare_s256}

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if grant.request.client.is_public and not challenge:
            raise InvalidRequestError("PKCE is required for public clients: send 'code_challenge' with method S256.")
        if challenge and method is None:
            raise InvalidRequestError("Missing 'code_challenge_method'; only S256 is supported.")
        if method is not None and method != "S256":
            raise InvalidRequestError("Unsupported 'code_challenge_method'; only S256 is supported.")
        return super().validate_code_challenge(grant, redirect_uri)


class OpenIDCode(oidc_grants.OpenIDCode):
    """ID token per OIDC Core §2 and §3.1.3.6, signed with the client's chosen algorithm."""

    def exists_nonce(self, nonce, request):
        return False  # nonce replay is the relying party's check (OIDC Core §3.1.3.7 step 11)

    def generate_user_info(self, user, scope):
        return {}

    def encode_id_token(self, token, request):
        cfg = current_app.config
        client = request.client
        user: tokens.Principal = request.user
        code = request.authorization_code
        alg = client.id_token_signed_response_alg or "RS256"
        now = int(time.time())
        claims = {"iss": cfg["ISSUER"], "aud": client.client_id, "iat": now, "exp": now + cfg["ID_TOKEN_TTL"]}
        claims.update(release.id_token_claims(user.person, client=client, scopes=set((token.get("scope") or "").split()),
                                              acr=user.acr, representation_id=user.representation_id,
                                              claims_request=user.claims_request))
        if code is not None and code.nonce:
            claims["nonce"] = code.nonce
        if user.auth_time:
            claims["auth_time"] = epoch(user.auth_time)
        if user.acr:
            claims["acr"] = user.acr
        if user.amr:
            claims["amr"] = user.amr
        if user.sid:
            claims["sid"] = user.sid
        claims["at_hash"] = create_half_hash(token["access_token"], alg).decode()
        return tokens.sign_jwt({"typ": "JWT"}, claims, alg)


class PrivateKeyJWT(JWTBearerClientAssertion):
    """``private_key_jwt`` client authentication (RFC 7523 §2.2, OIDC Core §9)."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self):
        super().__init__(validate_jti=True, leeway=60)

    def get_audiences(self):
        # RFC 9126 §2: the issuer, the token endpoint or the PAR endpoint, at every endpoint.
        issuer = current_app.config["ISSUER"]
        return [issuer, issuer + "/token", issuer + "/par"]

    def verify_claims(self, claims):
        super().verify_claims(claims)
        max_age = current_app.config["ASSERTION_MAX_AGE"]
        if int(claims["exp"]) > time.time() + max_age:
            from authlib.oauth2.rfc6749.errors import InvalidClientError

            raise InvalidClientError(description="The assertion lives too long.")

    def validate_jti(self, claims, jti):
        if not isinstance(jti, str) or not 1 <= len(jti) <= 255:
            return False
        now = utcnow()
        db.session.execute(UsedAssertion.__table__.delete().where(UsedAssertion.expires_at < now))
        try:
            with db.session.begin_nested():
                db.session.add(UsedAssertion(client_id=str(claims["sub"]), jti=jti,
                                             expires_at=now + timedelta(seconds=current_app.config["ASSERTION_MAX_AGE"] + 60)))
        except IntegrityError:
            return False
        db.session.commit()  # remembered even if the rest of the request fails
        return True

    def resolve_client_public_key(self, client):
        return KeySet.import_key_set(client.jwks or {"keys": []})
