"""The development outbox: every message becomes one JSON file, so a developer (or a test) can read
the code that would have been sent. Never for real people: production refuses it unless
``IDP_ALLOW_OUTBOX_IN_PRODUCTION=1`` (see ``idp/config.py``).

A file ``<UTC time>-<channel>-<random>.json`` holds ``{"channel", "to", "subject", "body", "time"}``;
it is written under a temporary name and renamed, so a reader never sees half a message.
"""
from __future__ import annotations

import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path


class Outbox:
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def send_email(self, to: str, subject: str, body: str) -> None:
        self._write("email", to, subject, body)

    def send_sms(self, to: str, body: str) -> None:
        self._write("sms", to, "", body)

    def _write(self, channel: str, to: str, subject: str, body: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = datetime.now(timezone.utc)
        name = f"{now:%Y%m%dT%H%M%S%fZ}-{channel}-{secrets.token_hex(4)}.json"
        record = {"channel": channel, "to": to, "subject": subject, "body": body,
                  "time": now.isoformat(timespec="microseconds")}
        tmp = self.directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, ensure_ascii=False, indent=1)
        os.replace(tmp, self.directory / name)


def read_outbox(directory: str | os.PathLike, *, to: str | None = None, channel: str | None = None) -> list[dict]:
    """The messages in an outbox directory, oldest first (optionally only those to ``to``/``channel``)."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    messages = []
    for path in sorted(folder.glob("*.json")):
        with path.open(encoding="utf-8") as fh:
            message = json.load(fh)
        if (to is None or message["to"] == to) and (channel is None or message["channel"] == channel):
            messages.append({**message, "file": str(path)})
    return messages
