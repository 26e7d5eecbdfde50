"""Signing keys (RS256, ES256) in ``<keys>/signing/``: create, rotate, load, publish.

Layout: ``<kid>.pem`` (PKCS#8, encrypted with IDP_KEYS_PASSPHRASE when set) and ``keys.json``
listing every key with its algorithm and times: ``created_at``, ``not_before`` (when it starts
signing), ``retired_at`` (when it stops) and ``revoked_at`` (compromised: withdrawn at once); an
RS256 key's ``rsa_bits`` (IDP_SIGNING_RSA_BITS when it was made).

A rotation publishes the new key *before* it signs (``not_before`` = now + IDP_KEYS_PUBLISH_AHEAD)
and the old key keeps signing until then, so every process has published the new key — it re-reads
``keys.json`` when its modification time changes — before any process signs with it. Which key
signs is decided per signing call from the loaded index and the clock, so the switch needs no
reload at that moment. A retired key stays in the JWKS until everything it signed has expired.
"""
from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import ECKey, KeySet, RSAKey

from .files import load_private_key_pem, locked, private_key_pem, read_json, write_json, write_private

ALGS = ("RS256", "ES256")
RSA_BITS = (2048, 3072, 4096)  # RFC 7518 §3.3: an RS256 key is at least 2048 bits
INDEX = "keys.json"
STATUSES = ("pending", "active", "retired", "expired", "revoked")


class KeyStoreError(Exception):
    pass


def key_times(entry: dict) -> tuple[int, int | None, int | None]:
    """(not_before, retired_at, revoked_at) of an index entry; entries written before publication
    ahead existed have no ``not_before``: they signed from their creation."""
    return entry.get("not_before", entry["created_at"]), entry["retired_at"], entry.get("revoked_at")


def rsa_bits_of(entry: dict) -> int | None:
    """The size of an RS256 key; entries written before the size was recorded are 3072 bits (the
    only size made then)."""
    return entry.get("rsa_bits", 3072) if entry["alg"] == "RS256" else None


def key_status(entry: dict, now: float, grace: int) -> str:
    """THE lifecycle rule: pending (published, not signing yet) → active (signing) → retired
    (published, not signing, for ``grace`` seconds) → expired (unpublished, prunable); or revoked."""
    not_before, retired_at, revoked_at = key_times(entry)
    if revoked_at is not None:
        return "revoked"
    if retired_at is not None and now >= retired_at:
        return "retired" if now < retired_at + grace else "expired"
    return "pending" if now < not_before else "active"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    entry: dict  # its line of keys.json
    jwk: object  # joserfc key (private)

    @property
    def not_before(self) -> int:
        return key_times(self.entry)[0]

    def status(self, now: float, grace: int) -> str:
        return key_status(self.entry, now, grace)


def _dir(keys_dir: Path) -> Path:
    return keys_dir / "signing"


def _locked(keys_dir: Path):
    """Serialise writers (two nodes running ``idp init`` or a rotation at once)."""
    return locked(_dir(keys_dir))


def _generate(alg: str, rsa_bits: int):
    if alg == "RS256":
        if rsa_bits not in RSA_BITS:
            raise KeyStoreError(f"unsupported RSA key size {rsa_bits}")
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise KeyStoreError(f"unsupported algorithm {alg}")


def _to_jwk(private_key, alg: str, kid: str | None = None):
    cls = RSAKey if alg == "RS256" else ECKey
    key = cls.import_key(private_key, parameters={"alg": alg, "use": "sig"})
    kid = kid or key.thumbprint()
    return cls.import_key(private_key, parameters={"alg": alg, "use": "sig", "kid": kid})


def _add_key(d: Path, index: dict, alg: str, passphrase: str | None, now: int, not_before: int,
             rsa_bits: int) -> dict:
    private_key = _generate(alg, rsa_bits)
    kid = _to_jwk(private_key, alg).kid
    write_private(d / f"{kid}.pem", private_key_pem(private_key, passphrase))
    entry = {"kid": kid, "alg": alg, "created_at": now, "not_before": not_before, "retired_at": None,
             "revoked_at": None}
    if alg == "RS256":
        entry["rsa_bits"] = rsa_bits
    index["keys"].append(entry)
    return entry


def _read_index(d: Path) -> dict:
    p = d / INDEX
    return read_json(p) if p.exists() else {"keys": []}


def _now(now: float | None) -> int:
    return int(time.time() if now is None else now)


def create_missing(keys_dir: Path, passphrase: str | None, now: float | None = None, *,
                   rsa_bits: int = 3072) -> list[dict]:
    """Ensure each algorithm has a key that signs now or will (one that is not retired); returns
    the keys created. A first key signs at once: no relying party can hold an older JWKS.
    ``rsa_bits``: the size of a new RS256 key (IDP_SIGNING_RSA_BITS)."""
    created = []
    with _locked(keys_dir) as d:
        index = _read_index(d)
        now = _now(now)
        for alg in ALGS:
            if not any(k["alg"] == alg and k["retired_at"] is None for k in index["keys"]):
                created.append(_add_key(d, index, alg, passphrase, now, now, rsa_bits))
        if created:
            write_json(d / INDEX, index)
    return created


def rotate(keys_dir: Path, passphrase: str | None, algs=ALGS, *, publish_ahead: int,
           revoke_old: bool = False, now: float | None = None, rsa_bits: int = 3072) -> dict:
    """A new key per algorithm, published now and signing from now + ``publish_ahead``; the keys
    that sign until then retire at that moment. ``revoke_old`` (a compromised key; needs
    ``publish_ahead`` 0) withdraws every earlier key of the algorithm at once and deletes it.
    ``rsa_bits``: the size of a new RS256 key (earlier keys keep theirs).

    Returns ``{"created": [entries], "retired": [entries], "revoked": [entries]}``.
    """
    if revoke_old and publish_ahead:
        raise KeyStoreError("revoking the old keys needs the new ones to sign at once")
    out = {"created": [], "retired": [], "revoked": []}
    with _locked(keys_dir) as d:
        index = _read_index(d)
        exact = time.time() if now is None else now
        now = int(exact)
        # Rounded up so the delay is never shorter than asked; an immediate start is rounded down.
        start = math.ceil(exact) + publish_ahead if publish_ahead else now
        for alg in algs:
            for k in index["keys"]:
                if k["alg"] != alg or k.get("revoked_at") is not None:
                    continue
                if revoke_old:
                    k["revoked_at"] = now
                    if k["retired_at"] is None or k["retired_at"] > now:
                        k["retired_at"] = now
                    with contextlib.suppress(FileNotFoundError):
                        (d / f"{k['kid']}.pem").unlink()
                    out["revoked"].append(k)
                elif k["retired_at"] is None or k["retired_at"] > start:
                    k["retired_at"] = start  # signs (or would have) until the new key takes over
                    out["retired"].append(k)
            out["created"].append(_add_key(d, index, alg, passphrase, now, start, rsa_bits))
        write_json(d / INDEX, index)
    return out


def prune(keys_dir: Path, grace: int, now: float | None = None) -> list[str]:
    """Delete expired keys (no token they signed is still valid) and revoked ones from the index."""
    removed = []
    with _locked(keys_dir) as d:
        index = _read_index(d)
        now = _now(now)
        keep = []
        for k in index["keys"]:
            if key_status(k, now, grace) in ("expired", "revoked"):
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
    """The keys one process signs with and publishes; reloads itself when ``keys.json`` changes.

    ``clock`` (wall time, seconds) and ``timer`` (monotonic, for the reload interval) are
    replaceable so tests can run several "processes" on one simulated clock.
    """

    def __init__(self, keys_dir: Path, passphrase: str | None, grace: int, reload_interval: int = 2, *,
                 clock: Callable[[], float] = time.time, timer: Callable[[], float] = time.monotonic):
        self.keys_dir = Path(keys_dir)
        self.passphrase = passphrase
        self.grace = grace
        self.reload_interval = reload_interval
        self.clock, self.timer = clock, timer
        self._lock = threading.Lock()
        self._index = None
        self._checked = 0.0
        self._keys: dict[str, SigningKey] = {}
        self._signers: dict[str, list[SigningKey]] = {}
        self._jwks_json = b""
        self._keyset = None
        self._jwks_expires = 0
        self.reload(force=True)

    def reload(self, force: bool = False) -> None:
        now = self.timer()
        if not force and now - self._checked < self.reload_interval:
            return
        with self._lock:
            self._checked = now
            path = _dir(self.keys_dir) / INDEX
            try:
                # Compared by content, not mtime: two writes within one clock tick of the file
                # system share an mtime (the index is small; this runs once per reload interval).
                content = path.read_bytes()
            except FileNotFoundError as exc:
                raise KeyStoreError(f"{path} is missing; run 'idp init'") from exc
            if not force and content == self._index and self.clock() < self._jwks_expires:
                return
            self._load(path, json.loads(content))
            self._index = content

    def _open(self, path: Path, entry: dict):
        pem = (path.parent / f"{entry['kid']}.pem").read_bytes()
        if b"ENCRYPTED" in pem and not self.passphrase:
            raise KeyStoreError("signing keys are encrypted; set IDP_KEYS_PASSPHRASE")
        try:
            pk = load_private_key_pem(pem, self.passphrase)
        except ValueError as exc:
            raise KeyStoreError(f"cannot open signing key {entry['kid']}: wrong IDP_KEYS_PASSPHRASE?") from exc
        return _to_jwk(pk, entry["alg"], entry["kid"])

    def _load(self, path: Path, document: dict) -> None:
        index = [e for e in document["keys"] if e.get("revoked_at") is None]
        keys = {}
        for entry in index:
            old = self._keys.get(entry["kid"])
            keys[entry["kid"]] = SigningKey(entry["kid"], entry["alg"], dict(entry),
                                            old.jwk if old else self._open(path, entry))
        # Every key that signs at some time, newest start first: signing_key picks by the clock.
        signers = {alg: sorted((k for k in keys.values() if k.alg == alg),
                               key=lambda k: (k.not_before, k.entry["created_at"]), reverse=True)
                   for alg in ALGS}
        now = self.clock()
        missing = [a for a in ALGS if not any(k.status(now, self.grace) == "active" for k in signers[a])]
        if missing:
            raise KeyStoreError(f"no active signing key for {', '.join(missing)}; run 'idp init'")
        # Pending keys are published too: that is what makes a rotation safe.
        published = [k for k in keys.values() if k.status(now, self.grace) != "expired"]
        self._keys, self._signers = keys, signers
        self._jwks_json = json.dumps({"keys": [k.jwk.as_dict(private=False) for k in published]}).encode()
        # Parsed once per reload: our own tokens are checked against it on every introspection.
        self._keyset = KeySet.import_key_set(json.loads(self._jwks_json))
        # Re-evaluate when the next retired key leaves the JWKS (a pending key is already in it).
        ends = [k.entry["retired_at"] + self.grace for k in published if k.entry["retired_at"] is not None]
        self._jwks_expires = min(ends) if ends else float("inf")

    def signing_key(self, alg: str) -> SigningKey:
        """The key that signs now: decided per call from the loaded index and the clock."""
        self.reload()
        now = self.clock()
        for k in self._signers.get(alg, ()):
            if k.status(now, self.grace) == "active":
                return k
        raise KeyStoreError(f"no signing key for {alg}")

    def published_kids(self) -> set[str]:
        return {k["kid"] for k in json.loads(self.jwks_json())["keys"]}

    def jwks_json(self) -> bytes:
        self.reload()
        return self._jwks_json

    def public_keyset(self):
        """The published keys as a joserfc ``KeySet`` (read-only; replaced, never changed, on reload)."""
        self.reload()
        return self._keyset

    @property
    def encrypted(self) -> bool:
        d = _dir(self.keys_dir)
        return all(b"ENCRYPTED" in (d / f"{kid}.pem").read_bytes() for kid in self._keys)
