"""Data-key rotation: a new encryption key, then every stored value re-encrypted under it.

``start`` adds the key (or resumes an unfinished rotation: values under an older key remain after
the current key was made by a rotation), ``Rotation.run`` re-encrypts in batches, one commit per
batch, each row updated only if it still holds the value read (a concurrent change wins, and is
under the new key anyway). Interrupted, it is simply run again: rows already under the current
key are skipped by the query itself. Old keys stay in the key file, so nothing is ever unreadable
in between. Blind indexes are untouched: their key does not rotate (keys/README.md).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from flask import current_app
from sqlalchemy import func, select, update

from ..audit.service import record
from ..authn.models import TotpCredential, VerificationCode
from ..db import db, transaction
from ..keystore import datakey
from ..seals.models import Seal
from .models import Person
from .protection import (FIELD_EMAIL, FIELD_ID_NUMBER, FIELD_PHONE, FIELD_SEAL_KEY, FIELD_TOTP_SECRET,
                         FIELD_VERIFICATION_DESTINATION, protector)


@dataclass(frozen=True)
class EncryptedColumn:
    """A column holding ciphertexts, and the field (associated data) a row's value is bound to."""

    model: type
    column: str
    field: Callable[[object], str]
    needs: tuple[str, ...] = ()  # other columns ``field`` reads


# Every encrypted column in the database (each value bound to its field name as associated data).
ENCRYPTED = (
    EncryptedColumn(Person, "id_number_enc", lambda row: FIELD_ID_NUMBER),
    EncryptedColumn(Person, "phone_enc", lambda row: FIELD_PHONE),
    EncryptedColumn(Person, "email_enc", lambda row: FIELD_EMAIL),
    EncryptedColumn(TotpCredential, "secret_enc", lambda row: FIELD_TOTP_SECRET),
    EncryptedColumn(VerificationCode, "destination_enc", lambda row: FIELD_VERIFICATION_DESTINATION),
    EncryptedColumn(Seal, "key_encrypted", lambda row: FIELD_SEAL_KEY),
)


def _stale(spec: EncryptedColumn, kid: str):
    col = spec.model.__table__.c[spec.column]
    # "<kid>." never matches a value of format 1 (base64url has no "."), which is under key "1".
    return col.isnot(None) & ~col.like(f"{kid}.%")


def stale_count(kid: str | None = None) -> int:
    """How many stored values are not under key ``kid`` (default: the current key)."""
    kid = kid or protector().current_key_id
    return sum(db.session.execute(select(func.count()).select_from(spec.model.__table__)
                                  .where(_stale(spec, kid))).scalar() for spec in ENCRYPTED)


@dataclass
class Rotation:
    key: str
    resumed: bool
    total: int
    actor: str = "cli"
    counts: dict = field(default_factory=lambda: {"reencrypted": 0, "unreadable": 0})

    def run(self, batch_size: int = 500, progress: Callable[[int], None] = lambda n: None) -> dict:
        """Re-encrypt every value not under the current key; audited. Passes repeat while a pass
        still finds values (a node that had not yet loaded the new key may have written some)."""
        for _ in range(3):
            done = bad = 0
            for spec in ENCRYPTED:
                d, b = _reencrypt_column(spec, batch_size, progress)
                done, bad = done + d, bad + b
            self.counts["reencrypted"] += done
            self.counts["unreadable"] = bad
            remaining = stale_count()
            if remaining <= bad or done == 0:
                break
        result = {"data_key": self.key, "resumed": self.resumed, **self.counts, "remaining": remaining}
        with transaction():
            record("data_key.reencrypted", actor=self.actor, target=f"data-key:{self.key}",
                   outcome="success" if remaining == 0 else "failure",
                   detail={k: v for k, v in result.items() if k != "data_key"})
        return result


def _reencrypt_column(spec: EncryptedColumn, batch_size: int, progress) -> tuple[int, int]:
    p = protector()
    kid = p.current_key_id
    table = spec.model.__table__
    col = table.c[spec.column]
    keep = {"updated_at": table.c.updated_at} if "updated_at" in table.c else {}  # not a profile change
    last, done, bad = 0, 0, 0
    while True:
        rows = db.session.execute(select(table.c.id, col.label("value"), *(table.c[n] for n in spec.needs))
                                  .where(table.c.id > last, _stale(spec, kid))
                                  .order_by(table.c.id).limit(batch_size)).all()
        if not rows:
            return done, bad
        with transaction():
            for row in rows:
                name = spec.field(row)
                try:
                    new = p.encrypt(p.decrypt(row.value, name), name)
                except ValueError:
                    bad += 1  # reported by count only: never the value
                    continue
                res = db.session.execute(update(table).where(table.c.id == row.id, col == row.value)
                                         .values({spec.column: new, **keep}))
                done += res.rowcount
        last = rows[-1].id
        progress(len(rows))


def start(actor: str = "cli", wait: Callable[[float], None] = time.sleep) -> Rotation:
    """Add a new data key and make it current, or resume the rotation an interruption left unfinished."""
    cfg = current_app.config
    p = protector()
    current = p.current_key_id
    pending = stale_count(current)
    if current != datakey.ROOT_ID and pending:
        return Rotation(key=current, resumed=True, total=pending, actor=actor)
    kid = datakey.add_key(Path(cfg["KEYS_DIR"]), cfg["KEYS_PASSPHRASE"])
    p.reload(force=True)
    with transaction():
        record("data_key.created", actor=actor, target=f"data-key:{kid}")
    # Other nodes switch to the new key within the reload interval; values they write under the
    # old key until then are caught by the run's later pass.
    if cfg["KEYS_RELOAD_INTERVAL"]:
        wait(cfg["KEYS_RELOAD_INTERVAL"] + 0.5)
    return Rotation(key=kid, resumed=False, total=stale_count(kid), actor=actor)
