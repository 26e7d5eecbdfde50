"""The data-protection keys: random 256-bit keys from which purpose keys are derived (HKDF).

Stored in ``<keys>/data-key.json``, each wrapped with AES-256-GCM under a key derived from
IDP_KEYS_PASSPHRASE by scrypt (or stored plainly, with a loud warning, in development).

Versioned: the file lists every key by id ("1", "2", …) and names the ``current`` one, which
encrypts new values; ciphertexts carry the id of their key, so values under older keys stay
readable while ``idp keys rotate-data`` re-encrypts them. The first key (``root``) also derives
the keys that must never change — blind indexes, client-secret digests and pairwise subjects —
so rotation changes only the encryption key (see keys/README.md for why).

Format 1 (one key, written before rotation existed) is still read: it is key "1", the root.
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .files import read_json, write_json

FILENAME = "data-key.json"
ROOT_ID = "1"


class KeyFileError(Exception):
    pass


@dataclass(frozen=True)
class DataKeys:
    """What a process holds: every data key by id, which one encrypts, and the root."""

    keys: dict[str, bytes]
    current: str
    root_id: str = ROOT_ID

    @property
    def root(self) -> bytes:
        return self.keys[self.root_id]


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: str) -> bytes:
    return base64.b64decode(s)


def _wrapping_key(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())


def _aad(kid: str) -> bytes:
    return b"idp data key:" + kid.encode()


@contextlib.contextmanager
def _locked(keys_dir: Path):
    """Serialise writers (two nodes running ``idp init``, or two rotations, at once)."""
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(keys_dir / ".data-key.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write(keys_dir: Path, passphrase: str | None, keys: DataKeys, created: dict[str, int]) -> None:
    entries = []
    wrapping = None
    doc: dict = {"version": 2, "current": keys.current, "root": keys.root_id}
    if passphrase:
        salt = os.urandom(16)
        wrapping = AESGCM(_wrapping_key(passphrase, salt))
        doc.update(wrap="scrypt-aes256gcm", salt=_b64(salt))
    else:
        doc["wrap"] = "none"
    for kid in sorted(keys.keys, key=int):
        entry = {"id": kid, "created_at": created.get(kid, int(time.time()))}
        if wrapping is not None:
            nonce = os.urandom(12)
            entry.update(nonce=_b64(nonce), ciphertext=_b64(wrapping.encrypt(nonce, keys.keys[kid], _aad(kid))))
        else:
            entry["key"] = _b64(keys.keys[kid])
        entries.append(entry)
    doc["keys"] = entries
    write_json(keys_dir / FILENAME, doc)


def _read(keys_dir: Path, passphrase: str | None) -> tuple[DataKeys, dict[str, int]]:
    path = keys_dir / FILENAME
    if not path.exists():
        raise KeyFileError(f"{path} is missing; run 'idp init'")
    doc = read_json(path)
    if doc.get("wrap") != "none" and not passphrase:
        raise KeyFileError("the data key is encrypted; set IDP_KEYS_PASSPHRASE")
    wrapping = AESGCM(_wrapping_key(passphrase, _unb64(doc["salt"]))) if doc.get("wrap") != "none" else None
    try:
        if doc.get("version", 1) == 1:
            if wrapping is None:
                key = _unb64(doc["key"])
            else:
                key = wrapping.decrypt(_unb64(doc["nonce"]), _unb64(doc["ciphertext"]), b"idp data key")
            return DataKeys({ROOT_ID: key}, ROOT_ID), {}
        keys, created = {}, {}
        for entry in doc["keys"]:
            kid = entry["id"]
            created[kid] = entry.get("created_at", 0)
            if wrapping is None:
                keys[kid] = _unb64(entry["key"])
            else:
                keys[kid] = wrapping.decrypt(_unb64(entry["nonce"]), _unb64(entry["ciphertext"]), _aad(kid))
    except InvalidTag as exc:
        raise KeyFileError("IDP_KEYS_PASSPHRASE does not open the data key") from exc
    if doc["current"] not in keys or doc.get("root", ROOT_ID) not in keys:
        raise KeyFileError(f"{path} is damaged: its current or root key is missing")
    return DataKeys(keys, doc["current"], doc.get("root", ROOT_ID)), created


def create(keys_dir: Path, passphrase: str | None) -> bool:
    """Create the data key if missing; returns True when created."""
    with _locked(keys_dir):
        if (keys_dir / FILENAME).exists():
            return False
        _write(keys_dir, passphrase, DataKeys({ROOT_ID: os.urandom(32)}, ROOT_ID), {})
    return True


def load_keys(keys_dir: Path, passphrase: str | None) -> DataKeys:
    return _read(keys_dir, passphrase)[0]


def load(keys_dir: Path, passphrase: str | None) -> bytes:
    """The root key (derives the keys that never rotate)."""
    return load_keys(keys_dir, passphrase).root


def add_key(keys_dir: Path, passphrase: str | None) -> str:
    """A new random encryption key, made current at once; returns its id. Older keys are kept
    (values under them stay readable until re-encrypted)."""
    with _locked(keys_dir):
        keys, created = _read(keys_dir, passphrase)
        kid = str(max(int(k) for k in keys.keys) + 1)
        created[kid] = int(time.time())
        _write(keys_dir, passphrase, DataKeys({**keys.keys, kid: os.urandom(32)}, kid, keys.root_id), created)
    return kid


def describe(keys_dir: Path, passphrase: str | None) -> list[dict]:
    """Ids, creation times and roles of the data keys (never the keys)."""
    keys, created = _read(keys_dir, passphrase)
    return [{"id": kid, "created_at": created.get(kid), "current": kid == keys.current, "root": kid == keys.root_id}
            for kid in sorted(keys.keys, key=int)]


def signature(keys_dir: Path) -> tuple[int, int] | None:
    """Changes whenever the file is rewritten (a rotation on any node)."""
    try:
        st = (keys_dir / FILENAME).stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_ino


def derive(data_key: bytes, purpose: str) -> bytes:
    """A separate 256-bit key per purpose, so one use can never be turned into another."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"idp:" + purpose.encode()).derive(data_key)
