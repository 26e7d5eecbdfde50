"""The record of seal applications, checked against the hash-chained audit log.

A ``seal_application`` row is an ordinary row; what makes it tamper-evident is its ``seal.applied``
audit event, written in the same transaction, whose detail repeats the row's seal, application id,
document and result digests and timestamp serial, and which is covered by the chain. ``check()``
compares every row with its event, so an edit to either is found: an edited event breaks the chain
(``audit.service.verify_chain``), an edited row no longer matches its event, and a row without an
event (inserted later) or an event without its row (row deleted) is reported too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from ..audit.models import AuditEvent
from ..db import db
from .models import SealApplication


@dataclass
class RecordCheck:
    checked: int = 0
    mismatched: list[int] = field(default_factory=list)   # application ids whose row differs from its event
    without_event: list[int] = field(default_factory=list)
    without_row: list[int] = field(default_factory=list)  # application ids named by events but missing

    @property
    def intact(self) -> bool:
        return not (self.mismatched or self.without_event or self.without_row)

    def to_dict(self) -> dict:
        return {"checked": self.checked, "intact": self.intact, "mismatched": self.mismatched,
                "without_event": self.without_event, "without_row": self.without_row}


def _expected(row: SealApplication) -> dict:
    return {"application": row.id, "kind": row.kind, "channel": row.channel,
            "document_sha256": row.document_sha256, "result_sha256": row.result_sha256,
            "tsa_serial": row.tsa_serial}


def check() -> RecordCheck:
    events: dict[int, AuditEvent] = {}
    for ev in db.session.execute(select(AuditEvent).where(AuditEvent.action == "seal.applied")).scalars():
        app_id = (ev.detail or {}).get("application")
        if isinstance(app_id, int):
            events[app_id] = ev
    result = RecordCheck()
    seen: set[int] = set()
    for row in db.session.execute(select(SealApplication).order_by(SealApplication.id)).scalars():
        result.checked += 1
        seen.add(row.id)
        ev = events.get(row.id)
        if ev is None:
            result.without_event.append(row.id)
            continue
        detail = {k: (ev.detail or {}).get(k) for k in _expected(row)}
        if detail != _expected(row) or ev.target != f"seal:{row.seal_id}":
            result.mismatched.append(row.id)
    result.without_row = sorted(set(events) - seen)
    return result
