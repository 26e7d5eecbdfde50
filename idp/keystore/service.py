"""Key operations as use cases: each one audited."""
from __future__ import annotations

import time
from pathlib import Path

from flask import current_app

from ..audit.service import record
from ..db import transaction
from . import datakey, signing


def token_grace(cfg) -> int:
    """How long a retired key must stay published: the longest lifetime of anything it signed."""
    return max(cfg["ACCESS_TOKEN_TTL"], cfg["ID_TOKEN_TTL"]) + cfg["CLOCK_LEEWAY"]


def ensure_keys(cfg) -> list[dict]:
    keys_dir = Path(cfg["KEYS_DIR"])
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    datakey.create(keys_dir, cfg["KEYS_PASSPHRASE"])
    return signing.create_missing(keys_dir, cfg["KEYS_PASSPHRASE"], rsa_bits=cfg["SIGNING_RSA_BITS"])


def rotate_keys(algs, *, immediately: bool = False, revoke_old: bool = False, actor: str = "cli") -> dict:
    """Publish new keys now; they sign from now + KEYS_PUBLISH_AHEAD (so every process publishes them
    first) and the current keys retire then. ``immediately``: the new keys sign at once (processes
    that have not re-read the index yet may sign with the old key for up to KEYS_RELOAD_INTERVAL);
    ``revoke_old`` (a compromised key; implies ``immediately``): earlier keys leave the JWKS at once."""
    cfg = current_app.config
    ahead = 0 if immediately or revoke_old else cfg["KEYS_PUBLISH_AHEAD"]
    result = signing.rotate(Path(cfg["KEYS_DIR"]), cfg["KEYS_PASSPHRASE"], algs, publish_ahead=ahead,
                            revoke_old=revoke_old, rsa_bits=cfg["SIGNING_RSA_BITS"])
    with transaction():
        for k in result["created"]:
            record("key.rotated", actor=actor, target=f"key:{k['kid']}",
                   detail={"alg": k["alg"], "not_before": k["not_before"], "immediately": bool(immediately or revoke_old)})
        for k in result["retired"]:
            record("key.retired", actor=actor, target=f"key:{k['kid']}",
                   detail={"alg": k["alg"], "retired_at": k["retired_at"]})
        for k in result["revoked"]:
            record("key.revoked", actor=actor, target=f"key:{k['kid']}", detail={"alg": k["alg"]})
    current_app.extensions["idp.keystore"].reload(force=True)
    return result


def list_keys() -> list[dict]:
    cfg = current_app.config
    now, grace = int(time.time()), token_grace(cfg)
    out = []
    for k in signing.read_index(Path(cfg["KEYS_DIR"])):
        status = signing.key_status(k, now, grace)
        not_before, retired_at, revoked_at = signing.key_times(k)
        unpublished_at = revoked_at if revoked_at is not None else (None if retired_at is None else retired_at + grace)
        out.append({"kid": k["kid"], "alg": k["alg"], "status": status, "signing": status == "active",
                    "published": status in ("pending", "active", "retired"),
                    "created_at": k["created_at"], "not_before": not_before, "retired_at": retired_at,
                    "unpublished_at": unpublished_at,
                    "revoked_at": revoked_at, "rsa_bits": signing.rsa_bits_of(k)})
    return out


def prune_keys(actor: str = "cli") -> list[str]:
    cfg = current_app.config
    removed = signing.prune(Path(cfg["KEYS_DIR"]), token_grace(cfg))
    with transaction():
        for kid in removed:
            record("key.deleted", actor=actor, target=f"key:{kid}")
    return removed
