"""Where the official's key lives, behind one small interface (``OfficialKey``).

``Pkcs12Key`` reads a PKCS#12 file; a PKCS#11 token can be added later as another ``OfficialKey``
(it signs inside the token and exposes only the certificate chain). Signing goes through joserfc.
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from .lang import t


class KeyUnavailable(Exception):
    """The key cannot be used (wrong password, not a PKCS#12 file, no certificate, …)."""


class OfficialKey(Protocol):
    alg: str

    def x5c(self) -> list[str]:
        """The certificate chain, leaf first, standard base64 DER (RFC 7515 §4.1.6)."""

    def public_jwk(self) -> dict:
        """The public key as a JWK (for DPoP proofs, RFC 9449 §4.2)."""

    def sign_jwt(self, header: dict, claims: dict) -> str:
        """A compact JWS of ``claims`` with ``alg`` added to ``header``."""

    def reference(self) -> dict:
        """What to store to find this key again (never the private key)."""


class Pkcs12Key:
    """An official's key and certificate chain from a PKCS#12 file (kept in memory only)."""

    def __init__(self, path: str | Path, password: str):
        self.path = Path(path).resolve()
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise KeyUnavailable(t("key_unreadable", path=self.path, error=exc.strerror)) from exc
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, password.encode())
        except ValueError as exc:
            raise KeyUnavailable(t("key_wrong_password", name=self.path.name)) from exc
        if key is None or cert is None:
            raise KeyUnavailable(t("key_empty", name=self.path.name))
        if isinstance(key, ec.EllipticCurvePrivateKey):
            self._jwk, self.alg = ECKey.import_key(key), {256: "ES256", 384: "ES384"}.get(key.curve.key_size, "ES256")
        elif isinstance(key, rsa.RSAPrivateKey):
            self._jwk, self.alg = RSAKey.import_key(key), "PS256"
        else:
            raise KeyUnavailable(t("key_type", name=self.path.name))
        self._chain = [cert, *(extra or [])]

    def x5c(self) -> list[str]:
        return [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in self._chain]

    def public_jwk(self) -> dict:
        return self._jwk.as_dict(private=False)

    def sign_jwt(self, header: dict, claims: dict) -> str:
        return jwt.encode({**header, "alg": self.alg}, claims, self._jwk, algorithms=[self.alg])

    def reference(self) -> dict:
        return {"type": "pkcs12", "path": str(self.path)}


def open_key(reference: dict, password: str) -> OfficialKey:
    """The key a stored reference names (``reference()``), unlocked with ``password``."""
    if reference.get("type") == "pkcs12":
        return Pkcs12Key(reference["path"], password)
    raise KeyUnavailable(t("key_reference", kind=reference.get("type")))
