"""Key operations as use cases: each one audited."""
from __future__ import annotations

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
    return signing.create_missing(keys_dir, cfg["KEYS_PASSPHRASE"])


def rotate_keys(algs, actor: str = "cli") -> list[dict]:
    cfg = current_app.config
    created = signing.rotate(Path(cfg["KEYS_DIR"]), cfg["KEYS_PASSPHRASE"], algs)
    with transaction():
        for k in created:
            record("key.rotated", actor=actor, target=f"key:{k['kid']}", detail={"alg": k["alg"]})
    current_app.extensions["idp.keystore"].reload(force=True)
    return created


def list_keys() -> list[dict]:
    import time

    cfg = current_app.config
    now, grace = int(time.time()), token_grace(cfg)
    out = []
    for k in signing.read_index(Path(cfg["KEYS_DIR"])):
        status = "active" if k["retired_at"] is None else ("retired" if now < k["retired_at"] + grace else "expired")
        out.append({**k, "status": status, "published": status != "expired"})
    return out


def prune_keys(actor: str = "cli") -> list[str]:
    cfg = current_app.config
    removed = signing.prune(Path(cfg["KEYS_DIR"]), token_grace(cfg))
    with transaction():
        for kid in removed:
            record("key.deleted", actor=actor, target=f"key:{kid}")
    return removed
