#!/usr/bin/env python3
"""Benchmark of ``idp users import``: rows/s and peak memory of the import process, and login
latency at a small and a large number of accounts.

Generates CSV files of synthetic citizens (unique usernames, GB 11643 ID numbers with correct check
characters, phones and emails; argon2 hashes made once and shared, a tenth without a hash), then:

1. two fresh databases (SQLite files in a temp dir, or ``--postgres URL``, which must be empty, and
   a sibling ``NAME_small`` the benchmark creates and drops), ``idp init`` on each;
2. ``idp users import small.csv`` (``--small`` rows, default 1,000) into the small database, and
   ``small.csv`` then ``big.csv`` (the other ``--rows`` − ``--small`` rows) into the big one, each
   import a process of its own: wall time, rows/s, CPU time and peak RSS (``os.wait4``);
3. login latency in this process, alternating between the two databases so both see the same
   machine load: ``find_by_login`` by username, phone and ID number, and ``check_password``
   (lookup + argon2 verify).

    .venv/bin/python bench/import_users.py                       # 1,000,000 rows on SQLite
    .venv/bin/python bench/import_users.py --rows 100000
    .venv/bin/python bench/import_users.py --postgres --rows 100000      # a throwaway PostgreSQL
    .venv/bin/python bench/import_users.py --postgres postgresql+psycopg://u:pw@127.0.0.1/idp_bench

See bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hub import REPO, idp_command, load_postgres_module  # noqa: E402

ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
ID_CHECK = "10X98765432"
REGIONS = ["210502", "210503", "210504", "210505", "210521", "210522", "110105", "210102"]  # 本溪, 北京, 沈阳
FIRST_DAY = date(1940, 1, 1)
DAYS = (date(2005, 12, 31) - FIRST_DAY).days + 1
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"
HASHES = 16  # distinct argon2 hashes (passwords bench-pw-0 … bench-pw-15), made once


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def id_number(i: int) -> str:
    """The i-th synthetic resident ID number: unique for i < len(REGIONS) × DAYS × 1000 (≈ 190 M)."""
    seq, rest = i % 1000, i // 1000
    day, region = rest % DAYS, rest // DAYS
    born = FIRST_DAY + timedelta(days=day)
    body = f"{REGIONS[region]}{born:%Y%m%d}{seq:03d}"
    return body + ID_CHECK[sum(int(c) * w for c, w in zip(body, ID_WEIGHTS)) % 11]


def account(i: int) -> dict:
    return {"username": f"u{i:07d}", "phone": f"13{i:09d}", "id_number": id_number(i), "email": f"u{i}@example.cn",
            "password": f"bench-pw-{i % HASHES}" if i % 10 else None}


def write_csv(path: Path, start: int, stop: int, hashes: list[str]) -> None:
    rnd = random.Random(start)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("username,name,id_number,phone,email,password_hash\r\n")
        for i in range(start, stop):
            a = account(i)
            name = rnd.choice(SURNAMES) + rnd.choice(GIVEN) + (rnd.choice(GIVEN) if i % 3 else "")
            h = f'"{hashes[i % HASHES]}"' if a["password"] else ""
            f.write(f'{a["username"]},{name},{a["id_number"]},{a["phone"]},{a["email"]},{h}\r\n')


def run_import(cmd: list[str], env: dict, out_dir: Path, label: str) -> dict:
    """``idp users import``; returns its JSON summary, wall time and the child's peak RSS."""
    out, err = out_dir / f"{label}.out", out_dir / f"{label}.err"
    t0 = time.perf_counter()
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(cmd, env=env, cwd=str(REPO), stdout=o, stderr=e)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{label}: exit {proc.returncode}\n{err.read_text(errors='replace')[-2000:]}")
    summary = json.loads(out.read_text().strip().splitlines()[-1])
    return {"summary": summary, "wall_s": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values)) - 1))]


def _timed(app, fn, login: str):
    from idp.db import db

    with app.app_context():
        t0 = time.perf_counter()
        person = fn(login)
        elapsed = (time.perf_counter() - t0) * 1000
        username = person.username if person is not None else None
        db.session.rollback()
    return elapsed, username


def login_latency(small_app, big_app, small_accounts: list[dict], big_accounts: list[dict], checks: int) -> dict:
    """p50/p95 ms of ``find_by_login`` by each login kind and of ``check_password`` (argon2 included),
    alternating between the small and the big database so both see the same machine load."""
    from idp.accounts.service import check_password, find_by_login

    def summary(times, digits):
        return {"p50_ms": round(statistics.median(times), digits), "p95_ms": round(pct(times, 95), digits)}

    out: dict = {"small": {}, "big": {}}
    kinds = ("username", "phone", "id_number")
    for kind in kinds:
        times: dict = {"small": [], "big": []}
        for a, b in zip(small_accounts, big_accounts):
            for label, app, acct in (("small", small_app, a), ("big", big_app, b)):
                elapsed, username = _timed(app, find_by_login, acct[kind])
                if username != acct["username"]:
                    raise RuntimeError(f"{acct['username']} not found by {kind}")
                times[label].append(elapsed)
        for label in times:
            out[label][f"lookup by {kind}"] = summary(times[label], 3)
    times = {"small": [], "big": []}
    pairs = [(a, b) for a, b in zip(small_accounts, big_accounts) if a["password"] and b["password"]][:checks]
    for n, (a, b) in enumerate(pairs):
        for label, app, acct in (("small", small_app, a), ("big", big_app, b)):
            elapsed, username = _timed(app, lambda login: check_password(login, acct["password"]), acct[kinds[n % 3]])
            if username != acct["username"]:
                raise RuntimeError(f"{acct['username']} cannot log in")
            times[label].append(elapsed)
    for label in times:
        out[label]["check_password"] = summary(times[label], 1)
    return out


def second_database(url: str) -> tuple[str, callable]:
    """A sibling PostgreSQL database for the small import (needs CREATEDB); returns it and its dropper."""
    from sqlalchemy import create_engine, make_url, text

    base = make_url(url)
    name = f"{base.database}_small"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False), drop


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="accounts in the big database (default 1,000,000)")
    ap.add_argument("--small", type=int, default=1000, help="accounts in the small database (default 1,000)")
    ap.add_argument("--postgres", nargs="?", const="", metavar="URL",
                    help="PostgreSQL instead of SQLite: an empty database at URL (the small one is created next to "
                    "it as NAME_small: needs CREATEDB), or without URL a throwaway server (tests/services/postgres.py)")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--lookups", type=int, default=300, help="accounts looked up per login kind and database")
    ap.add_argument("--password-checks", type=int, default=30, help="check_password calls per database (argon2)")
    ap.add_argument("--json", metavar="FILE", help="write every figure there")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args(argv)
    if not 0 < args.small < args.rows:
        ap.error("--small must be between 0 and --rows")

    tmp = Path(tempfile.mkdtemp(prefix="idp-bench-import-"))
    drop_small, apps, pg = None, [], None
    if args.postgres == "":
        log("starting a throwaway PostgreSQL (tests/services/postgres.py) ...")
        pg = load_postgres_module().PostgresServer()
        pg.start()
        big_url, small_url = pg.create_database("idp_bench"), pg.create_database("idp_bench_small")
    elif args.postgres:
        big_url = args.postgres
        small_url, drop_small = second_database(big_url)
    else:
        big_url, small_url = f"sqlite:///{tmp / 'big.sqlite3'}", f"sqlite:///{tmp / 'small.sqlite3'}"
    env = {**os.environ,
           "IDP_KEYS_DIR": str(tmp / "keys"),
           "IDP_SECRET_KEY": "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40)),
           "IDP_KEYS_PASSPHRASE": secrets.token_urlsafe(24)}
    env.pop("IDP_ENV", None)
    small_env, big_env = {**env, "IDP_DATABASE_URL": small_url}, {**env, "IDP_DATABASE_URL": big_url}
    results: dict = {"rows": args.rows, "small": args.small,
                     "backend": "sqlite" if args.postgres is None else "postgresql",
                     "batch_size": args.batch_size, "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}
    try:
        from argon2 import PasswordHasher

        t0 = time.perf_counter()
        hashes = [PasswordHasher().hash(f"bench-pw-{k}") for k in range(HASHES)]
        small_csv, big_csv = tmp / "small.csv", tmp / "big.csv"
        write_csv(small_csv, 0, args.small, hashes)
        write_csv(big_csv, args.small, args.rows, hashes)
        results["generate_s"] = round(time.perf_counter() - t0, 1)
        results["big_csv_mib"] = round(big_csv.stat().st_size / 2**20, 1)
        log(f"generated {args.rows:,} rows in {results['generate_s']} s ({results['big_csv_mib']} MiB)")

        for e in (small_env, big_env):  # the second init finds the keys the first one made
            subprocess.run(idp_command() + ["init"], env=e, cwd=str(REPO), check=True, capture_output=True)
        imp = idp_command() + ["users", "import", "--batch-size", str(args.batch_size)]
        results["import_small"] = run_import(imp + [str(small_csv)], small_env, tmp, "small")
        log(f"small database, {args.small:,} rows: {results['import_small']}")
        run_import(imp + [str(small_csv)], big_env, tmp, "small-into-big")
        results["import_big"] = run_import(imp + [str(big_csv)], big_env, tmp, "big")
        log(f"big database, {args.rows - args.small:,} more rows: {results['import_big']}")

        os.environ.update({k: v for k, v in env.items() if k.startswith("IDP_")})
        from idp import create_app

        small_app, big_app = create_app({"DATABASE_URL": small_url}), create_app({"DATABASE_URL": big_url})
        apps += [small_app, big_app]
        rnd = random.Random(7)
        n = min(args.lookups, args.small)
        in_small = [account(i) for i in rnd.sample(range(args.small), n)]
        # The big database: half the same accounts, half from the big file.
        in_big = [account(i) for i in rnd.sample(range(args.small, args.rows), n - n // 2)] + in_small[:n // 2]
        rnd.shuffle(in_big)
        results["login"] = login_latency(small_app, big_app, in_small, in_big, args.password_checks)
        log(f"login: {results['login']}")
        if args.postgres is None:
            results["sqlite_file_mib"] = round((tmp / "big.sqlite3").stat().st_size / 2**20, 1)
    finally:
        for app in apps:  # release the databases before dropping one
            from idp.db import db

            with app.app_context():
                db.engine.dispose()
        if drop_small is not None:
            drop_small()
        if pg is not None:
            pg.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")

    results["loadavg_end"] = os.getloadavg()
    big, small = results["import_big"], results["import_small"]
    print(f"\nidp users import, {results['backend']}, batch {args.batch_size}, {os.cpu_count()} CPUs, "
          f"load average {results['loadavg_start'][0]:.1f} at the start, {results['loadavg_end'][0]:.1f} at the end")
    print(f"{'file':>12} {'rows':>10} {'imported':>10} {'rejected':>9} {'wall s':>8} {'rows/s':>8} "
          f"{'CPU s':>7} {'rows/CPU s':>10} {'peak RSS MiB':>13}")
    for label, r in (("small.csv", small), ("big.csv", big)):
        s = r["summary"]
        print(f"{label:>12} {s['rows']:>10,} {s['imported']:>10,} {s['rejected']:>9,} {r['wall_s']:>8} "
              f"{round(s['rows'] / r['wall_s']):>8,} {r['cpu_s']:>7} {round(s['rows'] / max(r['cpu_s'], 0.1)):>10,} "
              f"{r['peak_rss_mib']:>13}")
    print(f"\nlogin latency, ms p50 / p95, alternating between the databases: {args.small:,} vs {args.rows:,} accounts")
    for key in results["login"]["small"]:
        a, b = results["login"]["small"][key], results["login"]["big"][key]
        print(f"{key:>20}  {a['p50_ms']:>8} / {a['p95_ms']:<8}  {b['p50_ms']:>8} / {b['p95_ms']:<8}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
