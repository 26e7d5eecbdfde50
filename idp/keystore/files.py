"""Small helpers for key files: written safely (private, atomic), locked while written, and
private keys stored as PKCS#8 PEM encrypted with IDP_KEYS_PASSPHRASE when it is set."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization


def write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 so a concurrent reader never sees a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj) -> None:
    write_private(path, json.dumps(obj, indent=2, sort_keys=True).encode())


def read_json(path: Path):
    return json.loads(path.read_text())


@contextlib.contextmanager
def locked(directory: Path):
    """Serialise writers of one key directory (several nodes running ``idp init`` at once)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield directory
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def private_key_pem(private_key, passphrase: str | None) -> bytes:
    """PKCS#8 PEM, encrypted under the passphrase when there is one."""
    enc = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
           else serialization.NoEncryption())
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def load_private_key_pem(pem: bytes, passphrase: str | None):
    """The key in a file written by ``private_key_pem``; ValueError with a clear reason otherwise."""
    encrypted = b"ENCRYPTED" in pem
    if encrypted and not passphrase:
        raise ValueError("the private key is encrypted; set IDP_KEYS_PASSPHRASE")
    try:
        return serialization.load_pem_private_key(pem, password=passphrase.encode() if encrypted else None)
    except (ValueError, TypeError) as exc:
        raise ValueError("cannot open the private key: wrong IDP_KEYS_PASSPHRASE?") from exc
