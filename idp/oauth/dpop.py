"""DPoP proofs (RFC 9449): one check, used by the token endpoint and by every resource endpoint.

``check_proof`` follows RFC 9449 §4.3 ("Checking DPoP Proofs"): exactly one ``DPoP`` header holding a
JWS (joserfc) with ``typ`` ``dpop+jwt``, an asymmetric ``alg`` we support, a public ``jwk`` that
verifies the signature; ``htm``/``htu`` equal to this request's method and URL (without query or
fragment); a recent ``iat``; a ``jti`` seen only once (kept in ``UsedAssertion`` under the key's
thumbprint); at a resource, ``ath`` = base64url(SHA-256(access token)); and, with ``DPOP_NONCE=on``,
a ``nonce`` the hub provided (§8, §9). It returns the JWK SHA-256 thumbprint (RFC 7638), the value a
bound token carries as ``cnf.jkt`` (§6.1).

Nonces (RFC 9449 §8 token endpoint, §9 resources) are stateless, so every node makes and accepts the
same ones: base64url(HMAC-SHA-256(key, "dpop-nonce" || window)), the key derived from the root data
key (``datakey.derive(…, "dpop-nonce")``, shared by all nodes through the keys directory), the window
the current ``DPOP_NONCE_LIFETIME``-second interval; a proof may carry the current window's nonce or
the previous one's. Every answer to a request with a ``DPoP`` header carries the current nonce in
``DPoP-Nonce`` (``offer_nonce``; §8.2 lets a server send a new one at any time), so a client that
keeps the last one it saw needs the ``use_dpop_nonce`` round trip only once per window or two.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

from authlib.oauth2.base import OAuth2Error
from flask import current_app, request
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy.exc import IntegrityError

from ..db import db, utcnow
from .models import UsedAssertion

ALGS = ("ES256", "ES384", "RS256", "PS256")
MAX_AGE = 300  # seconds a proof is accepted after its iat (and the jti remembered for)
SKEW = 60  # seconds a proof may come from the future (clock skew)


class LargeHeaders(jws.JWSRegistry):
    """joserfc's registry with room in the header for a public JWK (RSA 4096: ~750 bytes) or an ``x5c``
    certificate chain (RFC 7515 §4.1.6); joserfc's default stops at 512 bytes."""

    max_header_length = 16384


def registry() -> jws.JWSRegistry:
    return LargeHeaders(algorithms=list(ALGS))


class InvalidDPoPProofError(OAuth2Error):
    """RFC 9449 §5: the token endpoint's answer to a missing or bad DPoP proof."""

    error = "invalid_dpop_proof"
    status_code = 400


class UseDPoPNonceError(OAuth2Error):
    """RFC 9449 §8: the token endpoint's answer to a proof without the nonce it requires (400, with
    the nonce in ``DPoP-Nonce``, added by ``offer_nonce``)."""

    error = "use_dpop_nonce"
    status_code = 400


class DPoPError(Exception):
    """A refused proof; ``reason`` is a short code for the audit log, the message is for the client.
    ``error`` is the code a resource answers with (RFC 9449 §7.1), ``token_error`` the token endpoint's.
    ``audited``: worth an audit record (a bad or replayed proof); not the first ``use_dpop_nonce``
    answer to a proof without a nonce, which is the protocol's normal first step (§8, §9)."""

    error = "invalid_dpop_proof"
    token_error = InvalidDPoPProofError

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.audited = reason != "nonce_missing"


class NonceRequired(DPoPError):
    """RFC 9449 §8 (token endpoint, 400) and §9 (resources, 401): the proof lacks the current nonce."""

    error = "use_dpop_nonce"
    token_error = UseDPoPNonceError


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def access_token_hash(token: str) -> str:
    """``ath`` (RFC 9449 §4.2): base64url of the SHA-256 of the ASCII access token."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


def thumbprint(key) -> str:
    """RFC 7638 SHA-256 thumbprint of a public key (a joserfc key or a ``cryptography`` public key)."""
    if not isinstance(key, (ECKey, RSAKey)):
        key = (ECKey if hasattr(key, "curve") else RSAKey).import_key(key)
    return key.thumbprint()


def _public_key(jwk: object):
    if not isinstance(jwk, dict) or jwk.get("kty") not in ("EC", "RSA"):
        raise DPoPError("bad_key", "The DPoP proof's 'jwk' must be an EC or RSA public key.")
    if any(p in jwk for p in ("d", "p", "q", "dp", "dq", "qi")):
        raise DPoPError("bad_key", "The DPoP proof's 'jwk' must not contain a private key.")
    try:
        return (ECKey if jwk["kty"] == "EC" else RSAKey).import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise DPoPError("bad_key", "The DPoP proof's 'jwk' is not a valid key.") from exc


def _remember(jkt: str, jti: object) -> None:
    """RFC 9449 §11.1: a proof is accepted once; the jti is stored (and committed) before use."""
    if not isinstance(jti, str) or not 1 <= len(jti) <= 255:
        raise DPoPError("bad_claims", "The DPoP proof needs a 'jti'.")
    now = utcnow()
    db.session.execute(UsedAssertion.__table__.delete().where(UsedAssertion.expires_at < now))
    try:
        with db.session.begin_nested():
            db.session.add(UsedAssertion(client_id="dpop:" + jkt, jti=jti,
                                         expires_at=now + timedelta(seconds=MAX_AGE + SKEW)))
    except IntegrityError as exc:
        raise DPoPError("replayed", "The DPoP proof has already been used.") from exc
    db.session.commit()


def check_proof(headers, *, method: str, url: str, access_token: str | None = None) -> str:
    """Check the request's DPoP proof (RFC 9449 §4.3); the key's thumbprint, or DPoPError."""
    values = headers.getlist("DPoP") if hasattr(headers, "getlist") else [headers.get("DPoP")]
    values = [v for v in values if v]
    if len(values) != 1:
        raise DPoPError("missing", "Send exactly one DPoP proof in the 'DPoP' header.")
    proof = values[0]
    if len(proof) > 8192:
        raise DPoPError("malformed", "The DPoP proof is too long.")
    try:
        header = jws.extract_compact(proof.encode(), registry=registry()).protected
    except (JoseError, ValueError, TypeError) as exc:
        raise DPoPError("malformed", "The DPoP proof is not a JWS.") from exc
    if header.get("typ") != "dpop+jwt":
        raise DPoPError("malformed", "The DPoP proof's 'typ' must be 'dpop+jwt'.")
    if header.get("alg") not in ALGS:
        raise DPoPError("malformed", "The DPoP proof's 'alg' is not supported.")
    key = _public_key(header.get("jwk"))
    try:
        obj = jws.deserialize_compact(proof, key, algorithms=[header["alg"]], registry=registry())
        claims = json.loads(obj.payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise DPoPError("bad_signature", "The DPoP proof's signature does not verify.") from exc
    if not isinstance(claims, dict):
        raise DPoPError("malformed", "The DPoP proof's payload is not a JSON object.")
    if claims.get("htm") != method:
        raise DPoPError("wrong_htm", "The DPoP proof is for another HTTP method ('htm').")
    htu = claims.get("htu")
    if not isinstance(htu, str) or not hmac.compare_digest(htu.split("#")[0].split("?")[0], url):
        raise DPoPError("wrong_htu", "The DPoP proof is for another URL ('htu').")
    iat, now = claims.get("iat"), time.time()
    if not isinstance(iat, (int, float)) or isinstance(iat, bool) or not now - MAX_AGE <= iat <= now + SKEW:
        raise DPoPError("stale", "The DPoP proof is too old or not yet valid ('iat').")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(ath, access_token_hash(access_token)):
            raise DPoPError("wrong_ath", "The DPoP proof is not for this access token ('ath').")
    if nonces_required():
        _check_nonce(claims.get("nonce"))
    jkt = key.thumbprint()
    _remember(jkt, claims.get("jti"))
    return jkt


def nonces_required() -> bool:
    """``DPOP_NONCE=on``: every proof must carry a nonce the hub provided (RFC 9449 §8, §9)."""
    return current_app.config["DPOP_NONCE"] == "on"


def _nonce_key() -> bytes:
    return current_app.extensions["idp.dpop_nonce_key"]


def make_nonce(key: bytes, window: int) -> str:
    """The nonce of one time window: base64url(HMAC-SHA-256(key, "dpop-nonce" || window)), 43
    characters of the ``NQCHAR`` set (RFC 9449 §8.1)."""
    return b64url(hmac.new(key, b"dpop-nonce" + window.to_bytes(8, "big"), hashlib.sha256).digest())


def _window(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // current_app.config["DPOP_NONCE_LIFETIME"])


def current_nonce(now: float | None = None) -> str:
    """The nonce every node hands out now (``DPoP-Nonce``, RFC 9449 §8, §9)."""
    return make_nonce(_nonce_key(), _window(now))


def nonce_ok(value: str, now: float | None = None) -> bool:
    """The current window's nonce or the previous one's (so a nonce handed out just before the window
    moved on still works), compared in constant time; any other value, including one made with
    another hub's key, is not."""
    key, window, given = _nonce_key(), _window(now), value.encode()
    current = hmac.compare_digest(given, make_nonce(key, window).encode())
    previous = hmac.compare_digest(given, make_nonce(key, window - 1).encode())
    return current or previous


def _check_nonce(value: object) -> None:
    if value is None:
        raise NonceRequired("nonce_missing", "The DPoP proof must carry the nonce from the 'DPoP-Nonce' header.")
    if not isinstance(value, str) or len(value) > 256 or not nonce_ok(value):
        raise NonceRequired("nonce_invalid", "The DPoP proof's nonce is not (or no longer) valid: "
                                             "use the one from the 'DPoP-Nonce' header.")


def offer_nonce(response):
    """After every request that carried a ``DPoP`` header, with nonces on: the current nonce in
    ``DPoP-Nonce`` — required on a ``use_dpop_nonce`` answer (RFC 9449 §8, §9), and on every other
    answer so the client always holds a fresh one (§8.2)."""
    if "DPoP" in request.headers and nonces_required() and "idp.dpop_nonce_key" in current_app.extensions:
        response.headers["DPoP-Nonce"] = current_nonce()
    return response


def www_authenticate(error: str, description: str) -> str:
    """RFC 9449 §7.1: the DPoP challenge, with the algorithms we accept."""
    return f'DPoP algs="{" ".join(ALGS)}", error="{error}", error_description="{description}"'

