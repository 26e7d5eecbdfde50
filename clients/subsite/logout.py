"""The relying-party side of logout: what the provider told us, what has been logged out, and
the validation of back-channel logout tokens.

* ``Provider``     discovery metadata and JWKS of the provider (through Authlib's client, so the
                   ID-token check at sign-in and the logout-token check share one cache). Tests
                   replace it with any object that has ``metadata()`` and ``key_set(refresh=False)``.
* ``LogoutStore``  in-process, thread-safe, bounded: the ``sid`` values the provider ended, the
                   ``sub`` values it ended (with the time), and the ``jti`` values already seen.
                   Flask sessions are cookies in the browser, so a back-channel logout cannot delete
                   them; instead every request checks its session against this store.
* ``validate_logout_token``  OpenID Connect Back-Channel Logout 1.0 §2.6 (with §2.4 and RFC 8725
                   §3.11 explicit typing), on joserfc.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Protocol

from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

__all__ = ["BACKCHANNEL_EVENT", "LogoutStore", "LogoutTokenError", "Provider", "ProviderLike",
           "allowed_algorithms", "validate_logout_token"]

#: Back-Channel Logout 1.0 §2.4: the member of ``events`` that makes a JWT a logout token.
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: §2.4: the ``typ`` header of a logout token (RFC 7515 §4.1.9: "application/" may be omitted).
LOGOUT_TYP = "logout+jwt"
LEEWAY = 60  # seconds of clock skew accepted on iat / exp
MAX_AGE = 600  # a logout token older than this (by iat) is refused
MAX_TOKEN_LENGTH = 16 * 1024


class ReplayedLogoutToken(Exception):
    """A valid logout token whose ``jti`` was already processed: acknowledged, never acted on again."""


class LogoutTokenError(Exception):
    """The logout token is not acceptable; ``str(exc)`` is safe to return as error_description."""


class ProviderLike(Protocol):
    def metadata(self) -> dict: ...

    def key_set(self, refresh: bool = False) -> KeySet: ...


class Provider:
    """The provider as seen through discovery (OIDC Discovery 1.0 §4) and its ``jwks_uri``.

    ``key_set(refresh=True)`` fetches the JWKS again, at most once per ``min_refresh`` seconds: a
    stream of tokens with made-up ``kid`` values must not turn the subsite into a load generator.
    """

    def __init__(self, oauth_app, min_refresh: float = 10.0, clock=time.monotonic):
        self._app = oauth_app
        self._min_refresh = min_refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at: float | None = None

    def metadata(self) -> dict:
        return self._app.load_server_metadata()

    def key_set(self, refresh: bool = False) -> KeySet:
        with self._lock:
            now = self._clock()
            if self._keys is None:
                # Possibly the copy Authlib fetched for an ID token, of unknown age: so a refresh
                # is allowed right after (``_fetched_at`` stays None).
                self._keys = KeySet.import_key_set(self._app.fetch_jwk_set())
            if refresh and (self._fetched_at is None or now - self._fetched_at >= self._min_refresh):
                self._keys = KeySet.import_key_set(self._app.fetch_jwk_set(force=True))
                self._fetched_at = now
            return self._keys


class LogoutStore:
    """What the provider has logged out, kept ``lifetime`` seconds (the longest a subsite session
    lives, so no session that an entry concerns can outlive it), at most ``max_entries`` of each kind.

    ``sid``  ended for good (an ended provider session never comes back).
    ``sub``  ended at a time: sessions of that user that signed in before it are over, later ones not.
    ``jti``  seen logout tokens, each until the token could no longer be accepted anyway.
    """

    def __init__(self, lifetime: float = 12 * 3600, max_entries: int = 100_000, clock=time.time):
        self.lifetime = lifetime
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._sids: OrderedDict[str, float] = OrderedDict()  # sid -> forget after
        self._subs: OrderedDict[str, tuple[float, float]] = OrderedDict()  # sub -> (ended at, forget after)
        self._jtis: OrderedDict[str, float] = OrderedDict()  # jti -> forget after

    def _prune(self, now: float) -> None:
        # Entries are appended (or moved to the end) in the order of their expiry for sids and subs;
        # jti expiries differ a little per token, so that cache is swept fully but only from the front.
        for table, expiry in ((self._sids, lambda v: v), (self._subs, lambda v: v[1]),
                              (self._jtis, lambda v: v)):
            while table:
                key, value = next(iter(table.items()))
                if expiry(value) > now and len(table) <= self.max_entries:
                    break
                table.popitem(last=False)

    def end_sid(self, sid: str) -> None:
        with self._lock:
            now = self._clock()
            self._sids[sid] = now + self.lifetime
            self._sids.move_to_end(sid)
            self._prune(now)

    def end_sub(self, sub: str, at: float | None = None) -> None:
        with self._lock:
            now = self._clock()
            at = now if at is None else at
            previous = self._subs.get(sub)
            self._subs[sub] = (max(at, previous[0]) if previous else at, now + self.lifetime)
            self._subs.move_to_end(sub)
            self._prune(now)

    def is_ended(self, sid: str | None, sub: str | None, login_at: float) -> bool:
        with self._lock:
            now = self._clock()
            if sid is not None:
                expiry = self._sids.get(sid)
                if expiry is not None and expiry > now:
                    return True
            if sub is not None:
                entry = self._subs.get(sub)
                if entry is not None and entry[1] > now and login_at <= entry[0]:
                    return True
            return False

    def first_use_of_jti(self, jti: str, until: float) -> bool:
        """Record ``jti``; False if it was recorded before (a replay)."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            seen = self._jtis.get(jti)
            if seen is not None and seen > now:
                return False
            self._jtis[jti] = until
            self._jtis.move_to_end(jti)
            if len(self._jtis) > self.max_entries:
                self._jtis.popitem(last=False)
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._sids) + len(self._subs) + len(self._jtis)


def allowed_algorithms(metadata: dict) -> list[str]:
    """The algorithms a logout token may use: those the provider signs ID tokens with (Back-Channel
    Logout 1.0 §2.4: "signed ... using the same algorithms as ID Tokens"; OIDC Discovery 1.0 §3,
    RS256 when not advertised), keeping only asymmetric ones (we verify with the JWKS, never with a
    shared secret), never ``none`` (§2.6 step 2 requires a signature), and none joserfc deprecates."""
    advertised = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    if not isinstance(advertised, list):
        return []
    out = []
    for alg in advertised:
        if not isinstance(alg, str) or alg == "none" or alg.startswith("HS"):
            continue
        model = JWSRegistry.algorithms.get(alg)
        if model is not None and not model.security_warning and alg not in out:
            out.append(alg)
    return out


def _decode(token: str, provider: ProviderLike, algorithms: list[str]) -> jwt.Token:
    """Verify the signature with the provider's JWKS; on an unknown ``kid`` fetch the JWKS again,
    once (the provider may have rotated its keys since we last looked)."""
    try:
        return jwt.decode(token, provider.key_set(), algorithms=algorithms)
    except InvalidKeyIdError:
        return jwt.decode(token, provider.key_set(refresh=True), algorithms=algorithms)


def validate_logout_token(token, *, provider: ProviderLike, issuer: str, client_id: str, store: LogoutStore,
                          now: float | None = None, leeway: int = LEEWAY, max_age: int = MAX_AGE) -> dict:
    """Validate a logout token as Back-Channel Logout 1.0 §2.6 says; return its claims.

    Raises ``LogoutTokenError`` on the first failure. The ``jti`` is recorded only when everything
    else passed, so a rejected token leaves no trace and an accepted one cannot be replayed.
    """
    if not isinstance(token, str) or not token:
        raise LogoutTokenError("logout_token is missing")
    if len(token) > MAX_TOKEN_LENGTH:
        raise LogoutTokenError("logout_token is too long")
    now = time.time() if now is None else now
    try:
        metadata = provider.metadata()
    except Exception as exc:
        raise LogoutTokenError("the provider's metadata cannot be loaded") from exc
    if metadata.get("issuer") != issuer:  # OIDC Discovery 1.0 §4.3
        raise LogoutTokenError("the provider's metadata names another issuer")
    algorithms = allowed_algorithms(metadata)
    if not algorithms:
        raise LogoutTokenError("the provider advertises no usable signing algorithm")

    # §2.6 step 1 (encrypted tokens: not registered for, so a JWE fails here) and step 2: the
    # signature, by a key of the provider's JWKS, with an algorithm it uses for ID tokens.
    try:
        decoded = _decode(token, provider, algorithms)
    except JoseError as exc:
        raise LogoutTokenError(f"the logout token's signature is not valid ({exc.error})") from exc
    except ValueError as exc:  # joserfc: a key of the wrong type for the algorithm, malformed JSON
        raise LogoutTokenError("the logout token cannot be verified") from exc
    except Exception as exc:  # the JWKS cannot be fetched
        raise LogoutTokenError("the provider's keys cannot be loaded") from exc
    header, claims = decoded.header, decoded.claims

    # §2.4 "explicitly typed ... typ ... logout+jwt" (RFC 8725 §3.11: keeps an ID token or any other
    # JWT of the provider from passing for a logout token).
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower().removeprefix("application/") != LOGOUT_TYP:
        raise LogoutTokenError("the logout token's typ header is not logout+jwt")

    # §2.6 step 3: iss, aud, iat and exp as for ID tokens (OIDC Core 1.0 §3.1.3.7 steps 2, 3, 9, 10).
    registry = jwt.JWTClaimsRegistry(
        now=int(now), leeway=leeway,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        iat={"essential": True},
        jti={"essential": True},  # §2.4: REQUIRED
        events={"essential": True},  # §2.4: REQUIRED
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise LogoutTokenError(f"the logout token's claims are not valid ({exc.error}: {exc.description})") from exc
    if not isinstance(claims["jti"], str):
        raise LogoutTokenError("the logout token's jti is not a string")
    if "azp" in claims and claims["azp"] != client_id:  # OIDC Core 1.0 §3.1.3.7 step 5
        raise LogoutTokenError("the logout token's azp is not this client")
    if now - claims["iat"] > max_age + leeway:  # OIDC Core 1.0 §3.1.3.7 step 10: "too far away"
        raise LogoutTokenError("the logout token is too old")

    # §2.6 step 4 (§2.4): sid, sub or both; each a non-empty string.
    for name in ("sid", "sub"):
        if name in claims and (not isinstance(claims[name], str) or not claims[name]):
            raise LogoutTokenError(f"the logout token's {name} is not a string")
    if not claims.get("sid") and not claims.get("sub"):
        raise LogoutTokenError("the logout token has neither sid nor sub")

    # §2.6 step 5 (§2.4): events names the back-channel logout event, whose value is a JSON object.
    events = claims["events"]
    if not isinstance(events, dict) or BACKCHANNEL_EVENT not in events:
        raise LogoutTokenError("the logout token's events claim has no back-channel logout event")
    if not isinstance(events[BACKCHANNEL_EVENT], dict):
        raise LogoutTokenError("the back-channel logout event is not a JSON object")

    # §2.6 step 6 (§2.4): a nonce is PROHIBITED (an ID token can never pass for a logout token).
    if "nonce" in claims:
        raise LogoutTokenError("the logout token contains a nonce")

    # §2.6 step 7 (optional, done): the same jti not received recently. Remember it until the token
    # could not pass the iat / exp checks above anyway.
    until = max(claims["iat"] + max_age, claims.get("exp", 0)) + 2 * leeway
    if not store.first_use_of_jti(f"{issuer}\x00{claims['jti']}", until):
        raise ReplayedLogoutToken("the logout token was already used (jti replayed)")
    return claims
