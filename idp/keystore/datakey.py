"""The data-protection key: one random 256-bit key from which purpose keys are derived (HKDF).

Stored in ``<keys>/data-key.json``, wrapped with AES-256-GCM under a key derived from
IDP_KEYS_PASSPHRASE by scrypt (or stored plainly, with a loud warning, in development).
"""
from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .files import read_json, write_json

FILENAME = "data-key.json"


class KeyFileError(Exception):
    pass


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: str) -> bytes:
    return base64.b64decode(s)


def _wrapping_key(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())


def create(keys_dir: Path, passphrase: str | None) -> bool:
    """Create the data key if missing; returns True when created."""
    path = keys_dir / FILENAME
    if path.exists():
        return False
    key = os.urandom(32)
    if passphrase:
        salt, nonce = os.urandom(16), os.urandom(12)
        ct = AESGCM(_wrapping_key(passphrase, salt)).encrypt(nonce, key, b"idp data key")
        doc = {"version": 1, "wrap": "scrypt-aes256gcm", "salt": _b64(salt), "nonce": _b64(nonce), "ciphertext": _b64(ct)}
    else:
        doc = {"version": 1, "wrap": "none", "key": _b64(key)}
    write_json(path, doc)
    return True


def load(keys_dir: Path, passphrase: str | None) -> bytes:
    path = keys_dir / FILENAME
    if not path.exists():
        raise KeyFileError(f"{path} is missing; run 'idp init'")
    doc = read_json(path)
    if doc.get("wrap") == "none":
        return _unb64(doc["key"])
    if not passphrase:
        raise KeyFileError("the data key is encrypted; set IDP_KEYS_PASSPHRASE")
    try:
        return AESGCM(_wrapping_key(passphrase, _unb64(doc["salt"]))).decrypt(
            _unb64(doc["nonce"]), _unb64(doc["ciphertext"]), b"idp data key")
    except InvalidTag as exc:
        raise KeyFileError("IDP_KEYS_PASSPHRASE does not open the data key") from exc


def derive(data_key: bytes, purpose: str) -> bytes:
    """A separate 256-bit key per purpose, so one use can never be turned into another."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"idp:" + purpose.encode()).derive(data_key)
