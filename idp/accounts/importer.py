"""Import of an existing portal's citizens from a CSV file (``idp users import``).

The file (README "Importing accounts"): UTF-8 (a BOM is allowed), LF or CRLF line ends, one account
per line, a header row naming the columns. ``username`` is required; ``name``, ``id_number``,
``phone``, ``email`` and ``password_hash`` are optional, in any order; any other column refuses the
file. Each row passes the rules of ``users create`` and registration (``service.check_identity``)
and one account per username, resident ID number and phone, against existing accounts and the
earlier lines of the file. ``password_hash`` is an argon2 PHC string (quoted: it contains commas),
stored as is; an empty one makes an account that is used only after a password reset, so such a row
needs a phone or an email. Plaintext passwords are never accepted: a ``password`` column refuses the
file, and a value that is not an argon2 hash refuses its row.

Lines are read one at a time and written in batches, one transaction each holding the accounts, the
progress of the file (``ImportRun``, keyed by the file's SHA-256) and one ``accounts.imported`` audit
event. Memory does not grow with the file, and running the same file again continues after the last
committed batch: an interrupted batch was never committed, so no row is imported twice.
Refused rows go to a report file (``line,field,reason``: never the refused values), written before
the batch commits and cut back to the committed length when a run resumes.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from sqlalchemy import bindparam, func, insert, or_, select, text as sql_text, update
from sqlalchemy.exc import IntegrityError

from ..audit.service import record
from ..db import db, transaction, utcnow
from ..errors import DomainError
from .models import ImportRun, Person
from .passwords import check_stored_hash
from .protection import protector
from .service import InvalidInput, check_identity, new_subject

COLUMNS = ("username", "name", "id_number", "phone", "email", "password_hash")
UNIQUE = {"username": "username", "id_number": "ID number", "phone": "phone number"}  # one account each
MAX_LINE_BYTES = 4096  # a row of these columns is well under 1 KiB; longer lines are refused, not read
BATCH_SIZE = 1000
REPORT_COLUMNS = ("line", "field", "reason")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PERSON = Person.__table__
# Accounts holding any key of a batch: one indexed query per batch (each IN list expands at run time).
_CONFLICTS = select(_PERSON.c.id, _PERSON.c.username, _PERSON.c.id_number_index, _PERSON.c.phone_index,
                    _PERSON.c.email_index).where(or_(
                        _PERSON.c.username.in_(bindparam("username", expanding=True)),
                        _PERSON.c.id_number_index.in_(bindparam("id_number", expanding=True)),
                        _PERSON.c.phone_index.in_(bindparam("phone", expanding=True))))


class ImportFileError(DomainError):
    """The file as a whole cannot be imported (nothing was)."""

    code = "invalid_import_file"


class _Refused(Exception):
    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


def scan(path: str | os.PathLike) -> tuple[str, int]:
    """SHA-256 of the file and its number of lines, in one pass of 1 MiB reads."""
    digest, lines, last = hashlib.sha256(), 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return digest.hexdigest(), lines + (last != b"\n")


def _read_lines(f: BinaryIO, lineno: int) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text without its line end, problem) for each line from the file's position."""
    while raw := f.readline(MAX_LINE_BYTES + 2):
        lineno += 1
        ended = raw.endswith(b"\n")
        text = raw.rstrip(b"\n")
        text = text[:-1] if text.endswith(b"\r") else text
        if len(text) > MAX_LINE_BYTES:
            if not ended:  # skip the rest of the line without holding it in memory
                while (more := f.readline(1 << 16)) and not more.endswith(b"\n"):
                    pass
            yield lineno, None, f"The line is longer than {MAX_LINE_BYTES} bytes."
            continue
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield lineno, None, f"Not valid UTF-8 (byte {exc.start + 1} of the line)."
            continue
        yield lineno, decoded.removeprefix("\ufeff") if lineno == 1 else decoded, None


def _parse_header(f: BinaryIO) -> dict[str, int]:
    expected = ",".join(COLUMNS)
    first = next(_read_lines(f, 0), None)
    if first is None:
        raise ImportFileError(f"the file is empty: the first line must be a header such as {expected}")
    _, text, problem = first
    if problem:
        raise ImportFileError(f"line 1 (the header): {problem[0].lower()}{problem[1:-1]}")
    if not text.strip():
        raise ImportFileError(f"line 1 (the header) is blank: it must name the columns, such as {expected}")
    try:
        names = [n.strip().lower() for n in next(csv.reader((text,), strict=True))]
    except csv.Error as exc:
        raise ImportFileError(f"line 1 (the header) is not valid CSV: {exc}") from None
    if "password" in names:
        raise ImportFileError("plaintext passwords are not accepted: give argon2 hashes in a password_hash column, "
                              "or leave it out (those accounts set a password through password reset)")
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise ImportFileError(f"line 1 (the header): unknown column {unknown[0]!r}; the columns are {expected}")
    if len(set(names)) != len(names):
        raise ImportFileError("line 1 (the header): a column is named twice")
    if "username" not in names:
        raise ImportFileError(f"line 1 (the header): the username column is missing; the columns are {expected}")
    return {n: i for i, n in enumerate(names)}


def check_row(fields: list[str], columns: dict[str, int]) -> dict:
    """The canonical values of one row, or _Refused naming the field and the reason."""
    if len(fields) != len(columns):
        hint = " (a password_hash contains commas: quote it)" if any("$argon2" in f for f in fields) else ""
        raise _Refused("row", f"Expected {len(columns)} fields, found {len(fields)}{hint}.")
    values = dict.fromkeys(COLUMNS)
    for name, i in columns.items():
        value = fields[i].strip()
        if _CONTROL.search(value):
            raise _Refused(name, "Contains a line break or control character.")
        values[name] = value or None
    if values["username"] is None:
        raise _Refused("username", "The username is missing.")
    stored = values.pop("password_hash")
    try:
        row = check_identity(**values)
    except InvalidInput as exc:
        raise _Refused(exc.field, exc.message) from None
    if stored is not None and (problem := check_stored_hash(stored)):
        raise _Refused("password_hash", problem)
    if stored is None and not (row["phone"] or row["email"]):
        raise _Refused("password_hash", "No password hash, and no phone or email to reset the password with.")
    row["password_hash"] = stored
    return row


class _Report:
    """The refused rows, ``line,field,reason``; cut back to what the database says was committed."""

    def __init__(self, path: Path, committed: int | None):
        self.path, self.warning = path, None
        size = path.stat().st_size if path.exists() else -1
        if committed is not None and size < committed:
            self.warning = f"the report {path} of the earlier run is missing or shorter; it restarts here"
            committed = None
        if committed is None:
            self.file = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600), "r+b")
            self.file.write(self._encode([REPORT_COLUMNS]))
            committed = self.file.tell()
        else:
            self.file = open(path, "r+b")
        self.committed = committed
        self.rollback()

    @staticmethod
    def _encode(rows) -> bytes:
        out = io.StringIO(newline="")
        csv.writer(out).writerows(rows)
        return out.getvalue().encode("utf-8")

    def write(self, rows: list[tuple[int, str, str]]) -> int:
        """Write and sync before the batch commits; returns the new length."""
        self.file.write(self._encode(rows))
        self.file.flush()
        os.fsync(self.file.fileno())
        return self.file.tell()

    def rollback(self) -> None:
        self.file.truncate(self.committed)
        self.file.seek(self.committed)

    def close(self) -> None:
        self.file.close()


class _Run:
    """One pass over the file from where the last committed batch ended."""

    def __init__(self, run: ImportRun, report: _Report | None, actor: str):
        self.id, self.actor, self.report = run.id, actor, report
        self.sqlite = db.session.get_bind().dialect.name == "sqlite"
        state = run.report or {}
        self.lines_done, self.offset = run.lines_done, state["offset"]
        self.floor = state["person_id_floor"]  # accounts above it were created by this file's import
        self.totals = {"imported": run.imported, "rejected": run.rejected, "skipped": state.get("skipped", 0)}
        self.reasons = Counter(state.get("reasons", {}))
        self.imported = self.rejected = self.skipped = 0
        self.first_refusals: list[str] = []

    def commit(self, batch: list[tuple[int, dict | None, _Refused | None]], end_line: int, offset: int,
               finished: bool) -> None:
        for attempt in range(3):
            try:
                return self._commit(batch, end_line, offset, finished)
            except IntegrityError:  # an account made meanwhile by someone else: check the batch again
                self.report.rollback()
                if attempt == 2:
                    raise
            except BaseException:
                self.report.rollback()  # the report keeps only what the database committed
                raise

    def _commit(self, batch, end_line, offset, finished) -> None:
        run = ImportRun.__table__
        with transaction() as session:
            if self.sqlite:
                # A batch dirties thousands of index pages: checkpoint the WAL every ~40 MB, not ~4 MB.
                session.execute(sql_text("PRAGMA wal_autocheckpoint=10000"))
            # Takes the write lock (SQLite) / row lock (PostgreSQL) first, and proves no other process
            # has moved this file on since we read its progress.
            claimed = session.execute(update(run).where(run.c.id == self.id, run.c.lines_done == self.lines_done)
                                      .values(lines_done=run.c.lines_done))
            if claimed.rowcount != 1:
                raise ImportFileError("another import of this file is running (or ran meanwhile); run it again")
            rows, refused, skipped = self._decide(session, batch)
            if rows:
                p = protector()
                now = utcnow()
                session.execute(insert(_PERSON), [{
                    "sub": new_subject(), "username": r["username"], "password_hash": r["password_hash"],
                    "name": r["name"],
                    "id_number_enc": p.encrypt(r["id_number"], "id_number"), "id_number_index": r["keys"]["id_number"],
                    "phone_enc": p.encrypt(r["phone"], "phone"), "phone_index": r["keys"]["phone"],
                    "phone_verified": False,
                    "email_enc": p.encrypt(r["email"], "email"),
                    "email_index": r["email_index"],
                    "email_verified": False, "level": 1, "status": "active", "created_at": now, "updated_at": now,
                } for r in rows])
            report_bytes = self.report.write(refused) if refused else self.report.committed
            reasons = self.reasons + Counter(field for _, field, _ in refused)
            state = {"offset": offset, "person_id_floor": self.floor, "report_path": str(self.report.path),
                     "report_bytes": report_bytes, "skipped": self.totals["skipped"] + skipped,
                     "reasons": dict(reasons)}
            session.execute(update(run).where(run.c.id == self.id).values(
                lines_done=end_line, imported=run.c.imported + len(rows), rejected=run.c.rejected + len(refused),
                report=state, finished_at=utcnow() if finished else None))
            if batch:
                record("accounts.imported", actor=self.actor, target=f"import:{self.id}", detail={
                    "lines": [batch[0][0], batch[-1][0]], "imported": len(rows), "rejected": len(refused),
                    "skipped_already_imported": skipped})
        self.report.committed = report_bytes
        self.lines_done, self.offset, self.reasons = end_line, offset, reasons
        self.imported += len(rows)
        self.rejected += len(refused)
        self.skipped += skipped
        for key, n in (("imported", len(rows)), ("rejected", len(refused)), ("skipped", skipped)):
            self.totals[key] += n
        room = 10 - len(self.first_refusals)
        self.first_refusals += [f"line {line}: {field}: {reason}" for line, field, reason in refused[:room]]

    def _decide(self, session, batch) -> tuple[list[dict], list[tuple[int, str, str]], int]:
        """Split a batch into accounts to insert, refused rows and rows already imported."""
        p = protector()
        wanted: dict[str, set] = {k: set() for k in UNIQUE}
        for _, row, _ in batch:
            if row is not None:
                row["keys"] = {"username": row["username"],
                               "id_number": p.blind_index(row["id_number"], "id_number") if row["id_number"] else None,
                               "phone": p.blind_index(row["phone"], "phone") if row["phone"] else None}
                row["email_index"] = p.blind_index(row["email"], "email") if row["email"] else None
                for kind, key in row["keys"].items():
                    if key is not None:
                        wanted[kind].add(key)
        existing: dict[str, dict] = {k: {} for k in UNIQUE}
        found_rows = session.execute(_CONFLICTS, {k: list(v) for k, v in wanted.items()}) if batch else ()
        for found in found_rows:
            for kind, key in (("username", found.username), ("id_number", found.id_number_index),
                              ("phone", found.phone_index)):
                if key is not None:
                    existing[kind][key] = found

        rows, refused, skipped = [], [], 0
        taken: dict[str, dict] = {k: {} for k in UNIQUE}  # key -> line, for rows accepted in this batch
        for line, row, problem in batch:
            if row is None:
                refused.append((line, problem.field, problem.reason))
                continue
            keys = row["keys"]
            hits = {kind: existing[kind][key] for kind, key in keys.items() if key in existing[kind]}
            if hits:
                accounts = {h.id: h for h in hits.values()}
                only = next(iter(accounts.values()))
                if (len(accounts) == 1 and only.id <= self.floor and only.username == keys["username"]
                        and only.id_number_index == keys["id_number"] and only.phone_index == keys["phone"]
                        and only.email_index == row["email_index"]):
                    skipped += 1  # the same account, imported before (e.g. an earlier version of this file)
                    continue
                kind, account = next(iter(hits.items()))
                if account.id > self.floor:
                    reason = f"An earlier line of this file has the same {UNIQUE[kind]}."
                elif kind == "username":
                    reason = "The username is taken."
                else:
                    reason = f"An account with this {UNIQUE[kind]} exists."
                refused.append((line, kind, reason))
                continue
            dup = next(((kind, taken[kind][key]) for kind, key in keys.items() if key in taken[kind]), None)
            if dup:
                refused.append((line, dup[0], f"Line {dup[1]} has the same {UNIQUE[dup[0]]}."))
                continue
            for kind, key in keys.items():
                if key is not None:
                    taken[kind][key] = line
            rows.append(row)
        return rows, refused, skipped


def import_citizens(path: str | os.PathLike, *, report_path: str | os.PathLike | None = None,
                    batch_size: int = BATCH_SIZE, actor: str = "cli",
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Import (or continue importing) a CSV file of citizens; returns the summary printed by the CLI.

    ``progress(rows_done, rows_total)`` is called after each committed batch (and once at the start).
    """
    started = time.monotonic()
    path = Path(path)
    digest, total_lines = scan(path)
    rows_total = max(total_lines - 1, 0)
    with open(path, "rb") as f:
        columns = _parse_header(f)  # a wrong header refuses the file before anything is stored
        run = _start_run(path, digest, f.tell(), report_path)
        resumed_after = run.lines_done if run.lines_done > 1 else 0
        earlier_imported = run.imported if resumed_after else 0
        report, warnings = None, []
        if report_path is not None and Path(report_path).resolve() != Path(run.report["report_path"]):
            warnings.append(f"the report of this file stays {run.report['report_path']} (set by its first run)")
        if run.finished_at is None:
            report = _Report(Path(run.report["report_path"]), run.report["report_bytes"])
            warnings += [report.warning] if report.warning else []
        job = _Run(run, report, actor)
        try:
            if report is not None:
                _import_lines(f, job, columns, batch_size, rows_total, progress)
        finally:
            if report is not None:
                report.close()
    report_file = Path(run.report["report_path"])
    if report is not None and job.totals["rejected"] == 0 and report_file.exists() \
            and report_file.stat().st_size == report.committed:
        report_file.unlink()  # nothing was refused: no report to look at
    seconds = time.monotonic() - started
    done = job.imported + job.rejected + job.skipped
    return {
        "file": path.name, "import_run": job.id, "rows": rows_total, "resumed_after_line": resumed_after,
        "already_finished": report is None,
        "imported": job.imported, "rejected": job.rejected,
        "skipped_already_imported": earlier_imported + job.skipped,
        "totals": {"imported": job.totals["imported"], "rejected": job.totals["rejected"],
                   "rejected_by_field": dict(sorted(job.reasons.items()))},
        "report": str(report_file) if job.totals["rejected"] else None,
        "first_rejections": job.first_refusals,
        "warnings": warnings,
        "seconds": round(seconds, 2),
        "rows_per_second": round(done / seconds) if seconds and done else 0,
    }


def _start_run(path: Path, digest: str, header_end: int, report_path) -> ImportRun:
    """This file's progress record (created at the first run), detached from the session."""
    with transaction() as session:
        run = session.execute(select(ImportRun).where(ImportRun.file_digest == digest)).scalars().first()
        if run is None:
            floor = session.execute(select(func.coalesce(func.max(Person.id), 0))).scalar_one()
            run = ImportRun(file_digest=digest, file_name=path.name[-255:], lines_done=1, imported=0, rejected=0,
                            report={"offset": header_end, "person_id_floor": floor,
                                    "report_path": str(Path(report_path or f"{path}.rejected.csv").resolve()),
                                    "report_bytes": None, "skipped": 0, "reasons": {}})
            session.add(run)
            try:
                session.flush()
            except IntegrityError:
                raise ImportFileError("another import of this file is starting; run it again") from None
        session.refresh(run)
        session.expunge(run)
    return run


def _import_lines(f: BinaryIO, job: _Run, columns: dict[str, int], batch_size: int, rows_total: int,
                  progress: Callable[[int, int], None] | None) -> None:
    f.seek(job.offset)
    if progress:
        progress(job.lines_done - 1, rows_total)
    batch: list = []
    last = job.lines_done
    for lineno, text, problem in _read_lines(f, job.lines_done):
        last = lineno
        if problem is None and not text.strip():
            pass  # blank lines separate nothing and are not rows
        elif problem is not None:
            batch.append((lineno, None, _Refused("row", problem)))
        else:
            try:
                batch.append((lineno, check_row(next(csv.reader((text,), strict=True)), columns), None))
            except csv.Error as exc:
                batch.append((lineno, None, _Refused("row", f"Not valid CSV: {exc}.")))
            except _Refused as refused:
                batch.append((lineno, None, refused))
        if len(batch) >= batch_size:
            job.commit(batch, lineno, f.tell(), finished=False)
            batch = []
            if progress:
                progress(lineno - 1, rows_total)
    job.commit(batch, last, f.tell(), finished=True)
    if progress:
        progress(last - 1, rows_total)
