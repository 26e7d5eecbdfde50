"""Signing keys (RS256, ES256) in ``<keys>/signing/``: create, rotate, load, publish.

Layout: ``<kid>.pem`` (PKCS#8, encrypted with IDP_KEYS_PASSPHRASE when set) and ``keys.json``
listing every key with its algorithm, creation and retirement time. The newest unretired key
per algorithm signs; a retired key stays in the JWKS until everything it signed has expired.
A node notices a rotation by re-reading ``keys.json`` when its modification time changes.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import ECKey, RSAKey

from .files import load_private_key_pem, locked, private_key_pem, read_json, write_json, write_private

ALGS = ("RS256", "ES256")
INDEX = "keys.json"


class KeyStoreError(Exception):
    pass


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    created_at: int
    retired_at: int | None
    jwk: object  # joserfc key (private)

    def status(self, now: int, grace: int) -> str:
        if self.retired_at is None:
            return "active"
        return "retired" if now < self.retired_at + grace else "expired"


def _dir(keys_dir: Path) -> Path:
    return keys_dir / "signing"


def _locked(keys_dir: Path):
    """Serialise writers (two nodes running ``idp init`` or a rotation at once)."""
    return locked(_dir(keys_dir))


def _generate(alg: str):
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise KeyStoreError(f"unsupported algorithm {alg}")


def _to_jwk(private_key, alg: str, kid: str | None = None):
    cls = RSAKey if alg == "RS256" else ECKey
    key = cls.import_key(private_key, parameters={"alg": alg, "use": "sig"})
    kid = kid or key.thumbprint()
    return cls.import_key(private_key, parameters={"alg": alg, "use": "sig", "kid": kid})


def _add_key(d: Path, index: dict, alg: str, passphrase: str | None, now: int) -> dict:
    private_key = _generate(alg)
    kid = _to_jwk(private_key, alg).kid
    write_private(d / f"{kid}.pem", private_key_pem(private_key, passphrase))
    entry = {"kid": kid, "alg": alg, "created_at": now, "retired_at": None}
    index["keys"].append(entry)
    return entry


def _read_index(d: Path) -> dict:
    p = d / INDEX
    return read_json(p) if p.exists() else {"keys": []}


def create_missing(keys_dir: Path, passphrase: str | None) -> list[dict]:
    """Ensure one active key per algorithm; returns the keys created."""
    created = []
    with _locked(keys_dir) as d:
        index = _read_index(d)
        now = int(time.time())
        for alg in ALGS:
            if not any(k["alg"] == alg and k["retired_at"] is None for k in index["keys"]):
                created.append(_add_key(d, index, alg, passphrase, now))
        if created:
            write_json(d / INDEX, index)
    return created


def rotate(keys_dir: Path, passphrase: str | None, algs=ALGS) -> list[dict]:
    """Publish a new key per algorithm at once and retire the previous active one."""
    created = []
    with _locked(keys_dir) as d:
        index = _read_index(d)
        now = int(time.time())
        for alg in algs:
            for k in index["keys"]:
                if k["alg"] == alg and k["retired_at"] is None:
                    k["retired_at"] = now
            created.append(_add_key(d, index, alg, passphrase, now))
        write_json(d / INDEX, index)
    return created


def prune(keys_dir: Path, grace: int) -> list[str]:
    """Delete keys retired longer ago than ``grace`` seconds (no token they signed is still valid)."""
    removed = []
    with _locked(keys_dir) as d:
        index = _read_index(d)
        now = int(time.time())
        keep = []
        for k in index["keys"]:
            if k["retired_at"] is not None and now >= k["retired_at"] + grace:
                removed.append(k["kid"])
                with contextlib.suppress(FileNotFoundError):
                    (d / f"{k['kid']}.pem").unlink()
            else:
                keep.append(k)
        index["keys"] = keep
        write_json(d / INDEX, index)
    return removed


def read_index(keys_dir: Path) -> list[dict]:
    return _read_index(_dir(keys_dir))["keys"]


class KeyStore:
    """The keys one process signs with; reloads itself when ``keys.json`` changes on disk."""

    def __init__(self, keys_dir: Path, passphrase: str | None, grace: int, reload_interval: int = 2):
        self.keys_dir = Path(keys_dir)
        self.passphrase = passphrase
        self.grace = grace
        self.reload_interval = reload_interval
        self._lock = threading.Lock()
        self._mtime = None
        self._checked = 0.0
        self._keys: dict[str, SigningKey] = {}
        self._active: dict[str, SigningKey] = {}
        self._jwks_json = b""
        self._jwks_expires = 0
        self.reload(force=True)

    def reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.reload_interval:
            return
        with self._lock:
            self._checked = now
            path = _dir(self.keys_dir) / INDEX
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError as exc:
                raise KeyStoreError(f"{path} is missing; run 'idp init'") from exc
            if not force and mtime == self._mtime and time.time() < self._jwks_expires:
                return
            self._load(path)
            self._mtime = mtime

    def _load(self, path: Path) -> None:
        keys = dict(self._keys)
        index = read_json(path)["keys"]
        for entry in index:
            if entry["kid"] in keys:
                old = keys[entry["kid"]]
                keys[entry["kid"]] = SigningKey(old.kid, old.alg, old.created_at, entry["retired_at"], old.jwk)
                continue
            pem = (path.parent / f"{entry['kid']}.pem").read_bytes()
            if b"ENCRYPTED" in pem and not self.passphrase:
                raise KeyStoreError("signing keys are encrypted; set IDP_KEYS_PASSPHRASE")
            try:
                pk = load_private_key_pem(pem, self.passphrase)
            except ValueError as exc:
                raise KeyStoreError(f"cannot open signing key {entry['kid']}: wrong IDP_KEYS_PASSPHRASE?") from exc
            keys[entry["kid"]] = SigningKey(entry["kid"], entry["alg"], entry["created_at"], entry["retired_at"], _to_jwk(pk, entry["alg"], entry["kid"]))
        listed = {e["kid"] for e in index}
        keys = {kid: k for kid, k in keys.items() if kid in listed}
        active = {}
        for k in sorted(keys.values(), key=lambda k: k.created_at):
            if k.retired_at is None:
                active[k.alg] = k
        missing = [a for a in ALGS if a not in active]
        if missing:
            raise KeyStoreError(f"no active signing key for {', '.join(missing)}; run 'idp init'")
        now = int(time.time())
        published = [k for k in keys.values() if k.status(now, self.grace) != "expired"]
        self._keys, self._active = keys, active
        self._jwks_json = json.dumps({"keys": [k.jwk.as_dict(private=False) for k in published]}).encode()
        # Re-evaluate when the next retired key leaves the JWKS.
        ends = [k.retired_at + self.grace for k in published if k.retired_at is not None]
        self._jwks_expires = min(ends) if ends else float("inf")

    def signing_key(self, alg: str) -> SigningKey:
        self.reload()
        try:
            return self._active[alg]
        except KeyError as exc:
            raise KeyStoreError(f"no signing key for {alg}") from exc

    def jwks_json(self) -> bytes:
        self.reload()
        return self._jwks_json

    def public_keyset(self):
        from joserfc.jwk import KeySet

        return KeySet.import_key_set(json.loads(self.jwks_json()))

    @property
    def encrypted(self) -> bool:
        d = _dir(self.keys_dir)
        return all(b"ENCRYPTED" in (d / f"{kid}.pem").read_bytes() for kid in self._keys)
