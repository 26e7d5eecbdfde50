"""Personal data protection: identifiers encrypted at rest (AES-256-GCM) and found by a keyed
blind index (HMAC-SHA-256), so the database alone reveals neither."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

from ..keystore.datakey import derive


class Protector:
    def __init__(self, data_key: bytes):
        self._aead = AESGCM(derive(data_key, "pii-encryption"))
        self._index_key = derive(data_key, "blind-index")

    def encrypt(self, value: str | None, field: str) -> str | None:
        if value is None:
            return None
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, value.encode(), field.encode())
        return base64.urlsafe_b64encode(nonce + ct).decode()

    def decrypt(self, token: str | None, field: str) -> str | None:
        if token is None:
            return None
        raw = base64.urlsafe_b64decode(token)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], field.encode()).decode()
        except InvalidTag as exc:  # wrong key or tampered row
            raise ValueError(f"cannot decrypt {field}") from exc

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
