"""DPoP proofs (RFC 9449 §4.2) made with joserfc for the token endpoint tests, and the RFC 7638
thumbprint computed independently of the hub's code."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time

from joserfc import jws


def proof(key, *, htm="POST", htu=None, iat=None, jti=None, header_key=None, access_token=None, nonce=None) -> str:
    """RFC 9449 §4.2: typ dpop+jwt, alg, the public jwk; htm, htu, iat, jti; with ``access_token``,
    ``ath`` (its SHA-256, base64url); with ``nonce``, the server's nonce (§8, §9). ``header_key`` puts
    another key's jwk in the header (the signature then does not verify with it)."""
    claims = {"htm": htm, "htu": htu, "iat": int(time.time()) if iat is None else iat,
              "jti": jti or secrets.token_urlsafe(16)}
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["ath"] = base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()).rstrip(b"=").decode()
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": (header_key or key).as_dict(private=False)}
    return jws.serialize_compact(header, json.dumps(claims).encode(), key)


def rfc7638(key) -> str:
    """RFC 7638 §3.2 for an EC key, computed here: SHA-256 of the required members in lexical order."""
    d = key.as_dict(private=False)
    canonical = json.dumps({"crv": d["crv"], "kty": "EC", "x": d["x"], "y": d["y"]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
