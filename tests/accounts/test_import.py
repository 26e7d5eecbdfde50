"""``idp users import FILE.csv``: every row checked like ``users create`` (GB 11643 ID numbers, phone,
email, username; one account per username, ID number and phone), refused rows reported by line,
good rows kept, batches committed with the file's progress so a rerun continues (also after SIGKILL).
CSV per RFC 4180 (quoted fields, CRLF), UTF-8 with or without a BOM."""
from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text

from idp.accounts.importer import import_citizens
from idp.accounts.models import ImportRun, Person
from idp.accounts.passwords import hash_password
from idp.accounts.service import check_password, find_by_login
from idp.audit.models import AuditEvent
from idp.audit.service import verify_chain
from idp.db import db
from tests.conftest import PASSWORD, TEST_SECRET, Browser

HEADER = "username,name,id_number,phone,email,password_hash"
WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]


def id_number(n: int) -> str:
    """The n-th valid GB 11643 number (ISO 7064 MOD 11-2 check character), unique for n < 10**7."""
    body = f"210502{date(1980, 1, 1) + timedelta(days=n // 1000):%Y%m%d}{n % 1000:03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS)) % 11]


def row(i: int, **kw) -> str:
    values = {"username": f"user{i}", "name": f"市民{i}", "id_number": id_number(i), "phone": f"139{i:08d}",
              "email": f"user{i}@example.cn", "password_hash": ""}
    values.update(kw)
    return ",".join(f'"{v}"' if "," in v else v for v in values.values())


def write(tmp_path, lines, name="people.csv", newline="\n", bom=False) -> str:
    path = tmp_path / name
    data = newline.join(lines) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))
    return str(path)


def report_rows(path) -> list[dict]:
    with open(str(path) + ".rejected.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def count_people() -> int:
    return db.session.execute(select(func.count()).select_from(Person)).scalar_one()


def test_good_rows_are_kept_and_bad_rows_reported_by_line(app, tmp_path):
    path = write(tmp_path, [
        HEADER,
        row(1),
        row(2, id_number="110105194912310021"),             # line 3: wrong check character
        row(3, id_number="110105194902300021"),             # line 4: 30 February
        row(4, phone="12345"),                              # line 5
        row(5, email="not-an-email"),                       # line 6
        row(6, username="x"),                               # line 7
        row(7, name="名" * 129),                            # line 8: over-long field
        row(8, id_number="11010519491231002x"),             # line 9: lower-case x is accepted
    ])
    summary = import_citizens(path)
    assert (summary["imported"], summary["rejected"], summary["rows"]) == (2, 6, 8)
    refused = {int(r["line"]): (r["field"], r["reason"]) for r in report_rows(path)}
    assert refused[3] == ("id_number", "Invalid resident ID number: the check character should be X, not 1.")
    assert refused[4][0] == "id_number" and "date of birth" in refused[4][1]
    assert refused[5][0] == "phone" and refused[6][0] == "email" and refused[7][0] == "username"
    assert refused[8] == ("name", "The name must have 1-128 characters.")
    assert sorted(refused) == [3, 4, 5, 6, 7, 8]
    assert find_by_login("user1").name == "市民1"
    assert find_by_login("11010519491231002X").username == "user8"
    assert summary["report"] == path + ".rejected.csv" and summary["totals"]["rejected_by_field"]["id_number"] == 2


def test_report_holds_no_personal_data(app, tmp_path):
    path = write(tmp_path, [HEADER, row(1, phone="1390000000"), row(2, email="secret@@example.cn")])
    import_citizens(path)
    report = (tmp_path / "people.csv.rejected.csv").read_text(encoding="utf-8")
    assert "1390000000" not in report and "secret" not in report and "市民" not in report
    assert oct(os.stat(tmp_path / "people.csv.rejected.csv").st_mode & 0o777) == "0o600"


def test_duplicates_against_the_database_and_within_the_file(app, user, tmp_path):
    path = write(tmp_path, [
        HEADER,
        row(1, username="alice"),                              # 2: username of an existing account
        row(2, phone="13800138000"),                           # 3: alice's phone
        row(3, id_number="11010519491231002x"),                # 4: alice's ID number (other case)
        row(4),                                                # 5
        row(5, phone="13900000004"),                           # 6: phone of line 5, same batch
        row(6, id_number=id_number(4)),                        # 7: ID number of line 5, same batch
        row(4, phone="13900000099", id_number=id_number(99)),  # 8: username of line 5, next batch
        row(7, email="user4@example.cn"),                      # 9: an email may be shared
    ])
    summary = import_citizens(path, batch_size=3)
    refused = {int(r["line"]): (r["field"], r["reason"]) for r in report_rows(path)}
    assert refused == {
        2: ("username", "The username is taken."),
        3: ("phone", "An account with this phone number exists."),
        4: ("id_number", "An account with this ID number exists."),
        6: ("phone", "Line 5 has the same phone number."),
        7: ("id_number", "Line 5 has the same ID number."),
        8: ("username", "An earlier line of this file has the same username."),
    }
    assert summary["imported"] == 2 and count_people() == 3


def test_a_corrected_file_imports_only_what_is_missing(app, tmp_path):
    """The usual cycle: import, fix the refused rows, import the corrected file."""
    lines = [HEADER, row(1), row(2, phone="139"), row(3)]
    first = import_citizens(write(tmp_path, lines))
    assert (first["imported"], first["rejected"]) == (2, 1)
    lines[2] = row(2)
    second = import_citizens(write(tmp_path, lines, name="people-fixed.csv"))
    assert (second["imported"], second["rejected"], second["skipped_already_imported"]) == (1, 0, 2)
    assert second["report"] is None and not (tmp_path / "people-fixed.csv.rejected.csv").exists()
    assert count_people() == 3


def test_rerunning_a_finished_file_imports_nothing(app, tmp_path):
    path = write(tmp_path, [HEADER, row(1), row(2), row(3, phone="1")])
    import_citizens(path)
    again = import_citizens(path)
    assert again["already_finished"] and (again["imported"], again["rejected"]) == (0, 0)
    assert again["skipped_already_imported"] == 2 and again["totals"]["rejected"] == 1
    assert count_people() == 2 and len(report_rows(path)) == 1


def test_resume_after_an_interrupted_run(app, tmp_path):
    lines = [HEADER] + [row(i) if i % 7 else row(i, phone="x") for i in range(1, 41)]
    path = write(tmp_path, lines)
    calls = []

    def stop_after_three_batches(done, total):
        calls.append(done)
        if len(calls) == 4:  # the first call is the start
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_citizens(path, batch_size=5, progress=stop_after_three_batches)
    run = db.session.execute(select(ImportRun)).scalars().one()
    assert run.lines_done == 16 and run.finished_at is None and count_people() == 13

    summary = import_citizens(path, batch_size=5)
    assert summary["resumed_after_line"] == 16 and summary["skipped_already_imported"] == 13
    assert summary["totals"] == {"imported": 35, "rejected": 5, "rejected_by_field": {"phone": 5}}
    assert count_people() == 35
    assert [int(r["line"]) for r in report_rows(path)] == [8, 15, 22, 29, 36]


def test_a_batch_that_fails_before_its_commit_leaves_no_trace(app, tmp_path, monkeypatch):
    """The report is written before the commit; a batch that never commits is cut from it on resume."""
    import idp.accounts.importer as importer

    path = write(tmp_path, [HEADER] + [row(i, phone="bad") if i % 2 else row(i) for i in range(1, 11)])
    real, seen = importer.record, []

    def fail_second_batch(*a, **kw):
        seen.append(1)
        if len(seen) == 2:
            raise RuntimeError("power cut")
        return real(*a, **kw)

    monkeypatch.setattr(importer, "record", fail_second_batch)
    with pytest.raises(RuntimeError):
        import_citizens(path, batch_size=4)
    assert count_people() == 2 and len(report_rows(path)) == 2
    monkeypatch.setattr(importer, "record", real)
    summary = import_citizens(path, batch_size=4)
    assert summary["totals"]["imported"] == 5 and count_people() == 5
    assert [int(r["line"]) for r in report_rows(path)] == [2, 4, 6, 8, 10]


def test_a_concurrent_run_of_the_same_file_is_refused(app, tmp_path):
    from idp.errors import DomainError

    path = write(tmp_path, [HEADER] + [row(i) for i in range(1, 7)])

    def another_process_moves_on(done, total):
        if done >= 2:
            db.session.execute(text("UPDATE import_run SET lines_done = lines_done + 2"))
            db.session.commit()

    with pytest.raises(DomainError, match="another import of this file"):
        import_citizens(path, batch_size=2, progress=another_process_moves_on)
    assert count_people() == 2


def _env(instance) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(IDP_DATABASE_URL=f"sqlite:///{instance / 'idp.sqlite3'}", IDP_KEYS_DIR=str(instance / "keys"),
               IDP_SECRET_KEY=TEST_SECRET)
    return env


IDP = [sys.executable, "-c", "import sys; from idp.cli import main; sys.exit(main())"]


def test_sigkill_mid_import_then_rerun(app, instance, tmp_path):
    """Killed at an arbitrary point (SIGKILL: no cleanup), the rerun imports each row exactly once."""
    total = 4000
    lines = [HEADER] + [row(i, email="") if i % 101 else row(i, id_number="1") for i in range(1, total + 1)]
    path = write(tmp_path, lines, newline="\r\n")
    proc = subprocess.Popen([*IDP, "users", "import", path, "--batch-size", "50"], env=_env(instance),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watch = sqlite3.connect(instance / "idp.sqlite3", timeout=10)
    try:
        deadline = time.monotonic() + 120
        done = 0
        while done < 200 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
            try:
                done = (watch.execute("SELECT lines_done FROM import_run").fetchone() or (0,))[0]
            except sqlite3.OperationalError:  # locked for a moment by the writer
                pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = watch.execute("SELECT lines_done FROM import_run").fetchone()[0]
    finally:
        watch.close()
    assert proc.returncode == -signal.SIGKILL
    assert 200 <= killed_at < total + 1, "the import was not interrupted"

    rerun = subprocess.run([*IDP, "users", "import", path, "--batch-size", "50"], env=_env(instance),
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["resumed_after_line"] >= killed_at
    bad = [i + 1 for i in range(1, total + 1) if i % 101 == 0]
    assert summary["totals"]["imported"] == total - len(bad) and summary["totals"]["rejected"] == len(bad)
    db.session.rollback()
    assert count_people() == total - len(bad)
    assert [int(r["line"]) for r in report_rows(path)] == bad
    assert verify_chain()[1] is None


def test_cli_prints_json_on_stdout_and_the_summary_on_stderr(runner, tmp_path):
    path = write(tmp_path, [HEADER, row(1), row(2, phone="1")])
    r = runner.invoke(args=["users", "import", path])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert {"imported", "rejected", "skipped_already_imported", "seconds"} <= summary.keys()
    assert (summary["imported"], summary["rejected"]) == (1, 1)
    assert "line 3: phone" in r.stderr and "1 rows rejected" in r.stderr


@pytest.mark.parametrize("lines, words", [
    (["username,name,idnumber", "bob,b,x"], "unknown column 'idnumber'"),
    (["username,password", "bob,secret-pw-123"], "plaintext passwords are not accepted"),
    (["name,phone", "b,13900000000"], "username column is missing"),
    (["username,username", "bob,bob"], "named twice"),
    ([], "the file is empty"),
    (["", "bob"], "line 1 (the header) is blank"),
    (b"user\xffname\nbob\n", "line 1 (the header): not valid UTF-8 (byte 5 of the line)"),
])
def test_cli_refuses_a_wrong_header_and_imports_nothing(runner, app, tmp_path, lines, words):
    path = tmp_path / "people.csv"
    path.write_bytes(lines if isinstance(lines, bytes) else "\n".join(lines).encode())
    r = runner.invoke(args=["users", "import", str(path)])
    assert r.exit_code != 0 and words in r.stderr and "Traceback" not in r.output
    assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1
    assert count_people() == 0 and db.session.execute(select(ImportRun)).first() is None


def test_header_only_file_is_an_empty_import(runner, tmp_path):
    r = runner.invoke(args=["users", "import", write(tmp_path, [HEADER])])
    assert r.exit_code == 0 and json.loads(r.stdout)["imported"] == 0


def test_bom_crlf_any_column_order_blank_lines_and_no_final_newline(app, tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes(b"\xef\xbb\xbfPhone, Username ,ID_number\r\n13900000001,bob,"
                     + id_number(1).encode() + b"\r\n\r\n+86 139-0000-0002,carol,\r\n\r\n13900000003,dave,")
    summary = import_citizens(path)
    assert (summary["imported"], summary["rejected"], summary["rows"]) == (3, 0, 5)
    assert find_by_login("13900000003").username == "dave" and find_by_login(id_number(1)).username == "bob"
    assert find_by_login("13900000002").username == "carol"  # normalized like users create does


def test_non_utf8_over_long_and_malformed_lines_are_reported(app, tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes(b"\n".join([
        HEADER.encode(),
        row(1).encode(),
        b"user2,\xc0\xaf,,13900000002,,",                 # 3: not UTF-8
        b"user3," + b"x" * 5000 + b",,13900000003,,",     # 4: longer than 4096 bytes
        b'user4,"unclosed,,13900000004,,',              # 5: not CSV
        b"user5,,,13900000005",                         # 6: too few fields
        b"user6,\x01,,13900000006,,",                   # 7: control character
        row(7, password_hash=hash_password("ok-password-7")).replace('"', "").encode(),  # 8: unquoted hash
        row(9).encode(),
    ]) + b"\n")
    summary = import_citizens(path)
    refused = {int(r["line"]): (r["field"], r["reason"]) for r in report_rows(path)}
    assert refused[3] == ("row", "Not valid UTF-8 (byte 7 of the line).")
    assert refused[4] == ("row", "The line is longer than 4096 bytes.")
    assert refused[5][0] == "row" and "Not valid CSV" in refused[5][1]
    assert refused[6] == ("row", "Expected 6 fields, found 4.")
    assert refused[7] == ("name", "Contains a line break or control character.")
    assert refused[8][0] == "row" and "quote it" in refused[8][1]
    assert summary["imported"] == 2 and find_by_login("user9") is not None


@pytest.mark.parametrize("value, words", [
    ("correct horse battery", "Not an argon2 hash"),
    ("$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", "Not an argon2 hash"),
    ("$argon2id$v=19$m=4194304,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG", "costs above"),
])
def test_password_hash_must_be_argon2(app, tmp_path, value, words):
    path = write(tmp_path, [HEADER, row(1, password_hash=value)])
    assert import_citizens(path)["rejected"] == 1
    (refused,) = report_rows(path)
    assert refused["field"] == "password_hash" and words in refused["reason"] and value not in refused["reason"]


def test_row_without_a_hash_needs_a_way_to_reset_the_password(app, tmp_path):
    path = write(tmp_path, [HEADER, row(1, phone="", email=""), row(2, email=""), row(3, phone="")])
    summary = import_citizens(path)
    assert (summary["imported"], summary["rejected"]) == (2, 1)
    assert report_rows(path)[0]["line"] == "2"
    assert check_password("user2", "") is None and find_by_login("user2").password_hash is None


def test_an_account_imported_without_a_hash_is_used_after_a_password_reset(app, client, tmp_path):
    """The citizen proves the phone the old portal knew (a code to it), then chooses a password."""
    from tests.portal.support import code_sent_to, finish_reset, request_reset

    assert import_citizens(write(tmp_path, [HEADER, row(1)]))["imported"] == 1
    assert Browser(app.test_client()).login(username="user1", password="").status_code != 303
    request_reset(client, id_number(1))
    assert finish_reset(client, code_sent_to(app, "13900000001"), password="new plum blossom 42").status_code == 303
    assert Browser(app.test_client()).login(username="13900000001", password="new plum blossom 42").status_code == 303


def test_imported_accounts_log_in_with_their_hash_by_username_phone_and_id_number(app, browser, tmp_path):
    from argon2 import PasswordHasher, Type

    old_portal = PasswordHasher(type=Type.I, memory_cost=8192, time_cost=2).hash("portal password 1")
    path = write(tmp_path, [HEADER, row(1, password_hash=hash_password(PASSWORD)),
                            row(2, password_hash=old_portal)])
    assert import_citizens(path)["imported"] == 2
    for login in ("user1", "13900000001", id_number(1), id_number(1).lower()):
        assert check_password(login, PASSWORD).username == "user1"
    assert check_password("user1", "wrong password") is None
    assert browser.login(username="13900000001", password=PASSWORD).status_code == 303
    person = check_password(id_number(2), "portal password 1")
    assert person.username == "user2" and person.password_hash.startswith("$argon2id$")  # upgraded at login


def test_imported_identifiers_are_encrypted_and_audited_per_batch_without_personal_data(app, tmp_path):
    path = write(tmp_path, [HEADER] + [row(i) for i in range(1, 8)] + [row(8, phone="1")])
    import_citizens(path, batch_size=3)
    blob = " ".join(str(v) for r in db.session.execute(text("SELECT * FROM person")).all() for v in r)
    assert id_number(1) not in blob and "13900000001" not in blob and "user1@example.cn" not in blob
    events = db.session.execute(select(AuditEvent).where(AuditEvent.action == "accounts.imported")
                                .order_by(AuditEvent.id)).scalars().all()
    assert [e.detail for e in events] == [
        {"lines": [2, 4], "imported": 3, "rejected": 0, "skipped_already_imported": 0},
        {"lines": [5, 7], "imported": 3, "rejected": 0, "skipped_already_imported": 0},
        {"lines": [8, 9], "imported": 1, "rejected": 1, "skipped_already_imported": 0},
    ]
    assert verify_chain()[1] is None


@pytest.mark.postgres
def test_import_on_postgresql(tmp_path, postgres_url, template_dir):
    """The same statements on PostgreSQL: duplicates, an interrupted run resumed, login by phone."""
    import shutil

    from idp import create_app
    from idp.accounts.service import create_citizen
    from idp.migrations_lock import upgrade_database
    from tests.conftest import _config

    shutil.copytree(template_dir / "keys", tmp_path / "keys")
    app = create_app(_config(tmp_path, db_url=postgres_url))
    with app.app_context():
        try:
            upgrade_database()
            create_citizen(username="alice", password=PASSWORD, phone="13800138000")
            path = write(tmp_path, [HEADER, row(1, password_hash=hash_password(PASSWORD)), row(2, phone="13800138000"),
                                    row(3), row(4, username="user3")] + [row(i) for i in range(5, 12)])

            def stop(done, total):
                if done >= 4:
                    raise KeyboardInterrupt

            with pytest.raises(KeyboardInterrupt):
                import_citizens(path, batch_size=4, progress=stop)
            summary = import_citizens(path, batch_size=4)
            assert summary["resumed_after_line"] == 5
            assert summary["totals"]["imported"] == 9 and count_people() == 10
            refused = {int(r["line"]): r["reason"] for r in report_rows(path)}
            assert refused == {3: "An account with this phone number exists.", 5: "Line 4 has the same username."}
            assert check_password("13900000001", PASSWORD).username == "user1"
            assert verify_chain()[1] is None
        finally:
            db.session.remove()
            db.engine.dispose()
