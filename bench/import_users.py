#!/usr/bin/env python3
"""Benchmark of ``idp users import``: rows/s and peak memory of the import process, and login
latency at a small and a large number of accounts.

Generates CSV files of synthetic citizens (unique usernames, GB 11643 ID numbers with correct check
characters, phones and emails; argon2 hashes made once and shared, a tenth without a hash), then on
a fresh database (SQLite in a temp dir, or ``--postgres URL``, which must be empty):

1. ``idp init``; ``idp users import small.csv`` (``--small`` rows, default 1,000);
2. login latency at ``--small`` accounts: ``find_by_login`` by username, phone and ID number, and
   ``check_password`` (lookup + argon2 verify), in this process;
3. ``idp users import big.csv`` (the other ``--rows`` − ``--small`` rows): rows/s, peak RSS;
4. the same login latency at ``--rows`` accounts, for the same accounts plus ones from the big file.

    .venv/bin/python bench/import_users.py                       # 1,000,000 rows on SQLite
    .venv/bin/python bench/import_users.py --rows 100000
    .venv/bin/python bench/import_users.py --postgres postgresql+psycopg://u:pw@127.0.0.1/idp_bench

Peak memory is the child's own ``ru_maxrss`` (``os.wait4``), so it is the import process alone.
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
from hub import REPO, idp_command  # noqa: E402

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


def login_latency(app, accounts: list[dict], checks: int) -> dict:
    """Median/p95 ms of find_by_login by each login kind, and of check_password (argon2 included)."""
    from idp.accounts.service import check_password, find_by_login
    from idp.db import db

    out = {}
    with app.app_context():
        for kind in ("username", "phone", "id_number"):
            times = []
            for a in accounts:
                t0 = time.perf_counter()
                person = find_by_login(a[kind])
                times.append((time.perf_counter() - t0) * 1000)
                if person is None or person.username != a["username"]:
                    raise RuntimeError(f"{a['username']} not found by {kind}")
                db.session.rollback()
            out[f"lookup by {kind}"] = {"p50_ms": round(statistics.median(times), 3), "p95_ms": round(pct(times, 95), 3)}
        times = []
        with_pw = [a for a in accounts if a["password"]][:checks]
        for n, a in enumerate(with_pw):
            login = a[("username", "phone", "id_number")[n % 3]]
            t0 = time.perf_counter()
            ok = check_password(login, a["password"])
            times.append((time.perf_counter() - t0) * 1000)
            if ok is None:
                raise RuntimeError(f"{a['username']} cannot log in")
            db.session.rollback()
        out["check_password"] = {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(pct(times, 95), 1)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="accounts in all (default 1,000,000)")
    ap.add_argument("--small", type=int, default=1000, help="accounts at the first latency measurement")
    ap.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database instead of SQLite")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--lookups", type=int, default=300, help="accounts looked up per login kind")
    ap.add_argument("--password-checks", type=int, default=30, help="check_password calls (argon2: slow)")
    ap.add_argument("--json", metavar="FILE", help="write every figure there")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args(argv)
    if not 0 < args.small < args.rows:
        ap.error("--small must be between 0 and --rows")

    tmp = Path(tempfile.mkdtemp(prefix="idp-bench-import-"))
    env = {**os.environ,
           "IDP_DATABASE_URL": args.postgres or f"sqlite:///{tmp / 'idp.sqlite3'}",
           "IDP_KEYS_DIR": str(tmp / "keys"),
           "IDP_SECRET_KEY": "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40)),
           "IDP_KEYS_PASSPHRASE": secrets.token_urlsafe(24)}
    env.pop("IDP_ENV", None)
    results: dict = {"rows": args.rows, "small": args.small, "backend": "postgresql" if args.postgres else "sqlite",
                     "batch_size": args.batch_size, "cpus": os.cpu_count()}
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

        subprocess.run(idp_command() + ["init"], env=env, cwd=str(REPO), check=True, capture_output=True)
        imp = idp_command() + ["users", "import", "--batch-size", str(args.batch_size)]
        results["import_small"] = run_import(imp + [str(small_csv)], env, tmp, "small")
        log(f"imported {args.small:,}: {results['import_small']}")

        os.environ.update({k: v for k, v in env.items() if k.startswith("IDP_")})
        from idp import create_app

        app = create_app()
        rnd = random.Random(7)
        first = [account(i) for i in rnd.sample(range(args.small), min(args.lookups, args.small))]
        results["login_small"] = login_latency(app, first, args.password_checks)
        log(f"login at {args.small:,} accounts: {results['login_small']}")

        results["import_big"] = run_import(imp + [str(big_csv)], env, tmp, "big")
        s = results["import_big"]["summary"]
        results["import_rows_per_s"] = round((s["imported"] + s["rejected"]) / results["import_big"]["wall_s"])
        log(f"imported {args.rows - args.small:,} more: {results['import_big']}")

        later = [account(i) for i in rnd.sample(range(args.small, args.rows), min(args.lookups, args.rows - args.small))]
        mixed = [a for pair in zip(first, later) for a in pair]
        results["login_big"] = login_latency(app, mixed, args.password_checks)
        log(f"login at {args.rows:,} accounts: {results['login_big']}")
        if not args.postgres:
            results["sqlite_file_mib"] = round((tmp / "idp.sqlite3").stat().st_size / 2**20, 1)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")

    big, small = results["import_big"], results["import_small"]
    print(f"\nidp users import, {results['backend']}, batch {args.batch_size}, {os.cpu_count()} CPUs")
    print(f"{'file':>12} {'rows':>10} {'imported':>10} {'rejected':>9} {'wall s':>8} {'rows/s':>8} {'peak RSS MiB':>13}")
    for label, r in (("small.csv", small), ("big.csv", big)):
        s = r["summary"]
        print(f"{label:>12} {s['rows']:>10,} {s['imported']:>10,} {s['rejected']:>9,} {r['wall_s']:>8} "
              f"{round(s['rows'] / r['wall_s']):>8,} {r['peak_rss_mib']:>13}")
    print(f"\nlogin latency (ms, p50 / p95) at {args.small:,} and {args.rows:,} accounts")
    for key in results["login_small"]:
        a, b = results["login_small"][key], results["login_big"][key]
        print(f"{key:>20}  {a['p50_ms']:>8} / {a['p95_ms']:<8}  {b['p50_ms']:>8} / {b['p95_ms']:<8}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
