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


# What a ``seal.applied`` event repeats of its row: detail key -> column.
_FIELDS = {"application": "id", "kind": "kind", "channel": "channel", "document_sha256": "document_sha256",
           "result_sha256": "result_sha256", "tsa_serial": "tsa_serial"}
_APPLICATION = SealApplication.__table__
# Those columns and the seal (not the signatures: a record of many applications is large).
_ROW_COLUMNS = [_APPLICATION.c[column] for column in (*_FIELDS.values(), "seal_id")]


def _expected(row) -> dict:
    return {key: getattr(row, column) for key, column in _FIELDS.items()}


def check() -> RecordCheck:
    # What each event says, by application id (the fields compared, not whole ORM objects).
    events: dict[int, tuple] = {}
    for target, detail in db.session.execute(select(AuditEvent.target, AuditEvent.detail)
                                             .where(AuditEvent.action == "seal.applied")):
        app_id = (detail or {}).get("application")
        if isinstance(app_id, int):
            events[app_id] = (target, {k: detail.get(k) for k in _FIELDS})
    result = RecordCheck()
    seen: set[int] = set()
    for row in db.session.execute(select(*_ROW_COLUMNS).order_by(_APPLICATION.c.id)):
        result.checked += 1
        seen.add(row.id)
        said = events.get(row.id)
        if said is None:
            result.without_event.append(row.id)
            continue
        target, detail = said
        if detail != _expected(row) or target != f"seal:{row.seal_id}":
            result.mismatched.append(row.id)
    result.without_row = sorted(set(events) - seen)
    return result
