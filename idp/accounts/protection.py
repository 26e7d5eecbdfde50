"""Personal data protection: identifiers encrypted at rest (AES-256-GCM) and found by a keyed
blind index (HMAC-SHA-256), so the database alone reveals neither.

A ciphertext is ``<key id>.<base64url(nonce || ciphertext || tag)>`` (values written before key
rotation existed have no ``<key id>.`` and are under key "1"). The ``field`` name is the AES-GCM
associated data, so a value copied into another column does not decrypt. Every encrypted column
and the field its values are bound to are listed in ``accounts/rotation.py``: a new encrypted
column must be added there, or ``idp keys rotate-data`` will not re-encrypt it.

The blind-index key does not rotate (see keys/README.md): lookups stay single-valued during and
after a rotation.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

from ..keystore.datakey import ROOT_ID, DataKeys, derive, load_keys, signature

# The fields (associated data) of the encrypted columns; writers of these columns use these names.
FIELD_ID_NUMBER = "id_number"
FIELD_PHONE = "phone"
FIELD_EMAIL = "email"
FIELD_TOTP_SECRET = "totp"
FIELD_VERIFICATION_DESTINATION = "verification-destination"
FIELD_SEAL_KEY = "seal-key"  # a seal's private key (PKCS#8 PEM)


def key_id_of(token: str) -> str:
    """The id of the data key a stored value was encrypted with."""
    kid, dot, _ = token.partition(".")
    return kid if dot else ROOT_ID


class Protector:
    """Encrypts with the current data key, decrypts with any; notices a rotation made by another
    process (the key file changed) within ``reload_interval`` seconds, or at once when it meets a
    value under a key it does not know yet."""

    def __init__(self, keys: DataKeys, *, keys_dir: Path | None = None, passphrase: str | None = None,
                 reload_interval: float = 2):
        self._index_key = derive(keys.root, "blind-index")
        self._keys_dir, self._passphrase, self._interval = keys_dir, passphrase, reload_interval
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._signature = signature(keys_dir) if keys_dir else None
        self._install(keys)

    def _install(self, keys: DataKeys) -> None:
        # One assignment: a concurrent reader sees the old or the new set, never half of one.
        self._state = ({kid: AESGCM(derive(k, "pii-encryption")) for kid, k in keys.keys.items()}, keys.current)

    def reload(self, force: bool = False) -> None:
        if self._keys_dir is None:
            return
        now = time.monotonic()
        if not force and now - self._checked < self._interval:
            return
        with self._lock:
            self._checked = now
            sig = signature(self._keys_dir)
            if force or sig != self._signature:
                self._install(load_keys(self._keys_dir, self._passphrase))
                self._signature = sig

    @property
    def current_key_id(self) -> str:
        self.reload()
        return self._state[1]

    def encrypt(self, value: str | None, field: str) -> str | None:
        if value is None:
            return None
        self.reload()
        aeads, current = self._state
        nonce = os.urandom(12)
        ct = aeads[current].encrypt(nonce, value.encode(), field.encode())
        return f"{current}." + base64.urlsafe_b64encode(nonce + ct).decode()

    def decrypt(self, token: str | None, field: str) -> str | None:
        if token is None:
            return None
        kid, dot, body = token.partition(".")
        if not dot:
            kid, body = ROOT_ID, token
        aead = self._state[0].get(kid)
        if aead is None:  # encrypted by a node that has rotated already: read the key file now
            self.reload(force=True)
            aead = self._state[0].get(kid)
            if aead is None:
                raise ValueError(f"cannot decrypt {field}: unknown data key {kid!r}")
        try:
            raw = base64.urlsafe_b64decode(body)
            return aead.decrypt(raw[:12], raw[12:], field.encode()).decode()
        except (InvalidTag, ValueError) as exc:  # wrong key, wrong field or tampered row
            raise ValueError(f"cannot decrypt {field}") from exc

    def is_current(self, token: str) -> bool:
        return key_id_of(token) == self.current_key_id

    def blind_index(self, value: str, field: str) -> str:
        return hmac.new(self._index_key, f"{field}\x00{value}".encode(), hashlib.sha256).hexdigest()


def protector() -> Protector:
    return current_app.extensions["idp.protector"]


def mask_id_number(value: str) -> str:
    """2105**********123X: the first and last four characters only."""
    return value[:4] + "*" * (len(value) - 8) + value[-4:] if len(value) > 8 else "*" * len(value)


def mask_phone(value: str) -> str:
    """138****5678: the operator prefix and the last four digits."""
    return value[:3] + "*" * (len(value) - 7) + value[-4:] if len(value) > 7 else "*" * len(value)


def mask_email(value: str) -> str:
    """z***@example.cn: the first character of the local part and the domain."""
    local, _, domain = value.partition("@")
    return (local[:1] + "***@" + domain) if domain else "***"
