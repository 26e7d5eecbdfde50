#!/usr/bin/env python3
"""Benchmark of electronic seals (issue 6): seal applications and verifications per second, with
p50/p95 latency, for a 1-page PDF, a 50-page PDF and a 10 MiB file (detached CMS), and what the
timestamp costs inside an application.

1. A throwaway hub (bench/hub.py: temp dir, SQLite, or ``--postgres``), set up through the CLI as an
   operator would: ``idp init``, a department, an official (``idp officials add``) with a login
   certificate (``idp pki issue``, PKCS#12), a seal (``idp seals create``) the official is authorized
   for, and the officials' tool as a public client (JWT bearer grant).
2. In-process, through the service layer the API uses (each call in its own app context, like a
   request): ``seals.apply.apply_pdf`` / ``sign_file`` with the ``Proof`` of the official's login
   certificate (the rule, the hub's TSA, the record and its audit event included), and
   ``seals.verification.verify``. Also alone: ``seals.tsa.issue`` (one RFC 3161 token, committed),
   ``seals.service.credential_for`` (the seal key's decryption), and the TSA tokens per application.
3. Over HTTP (unless ``--no-http``): ``idp serve``, a DPoP-bound token from a certificate login
   (``clients/sealctl/hub.py``), then ``POST /api/seals/<id>/apply|sign`` and the public
   ``POST /api/seals/verify`` from ``--concurrency`` client threads.

Each measurement runs for ``--seconds`` or ``--iterations``, whichever ends first (at least
``--min-iterations``), after one unmeasured warm-up call.

    .venv/bin/python bench/seals.py                       # SQLite, in-process and HTTP (~3 min)
    .venv/bin/python bench/seals.py --quick               # smoke run (~30 s)
    .venv/bin/python bench/seals.py --postgres --seconds 10
    .venv/bin/python bench/seals.py --profile 20          # cProfile of 1-page PDF applications

See bench/README.md; figures in README "Performance".
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hub import REPO, Hub, load_postgres_module  # noqa: E402
from util import machine_info  # noqa: E402

sys.path.insert(0, str(REPO))  # clients/ (sealctl) is not an installed package

DEPARTMENT = ("SCJGJ", "本溪市市场监督管理局")
SEAL_NAME = "本溪市市场监督管理局行政审批专用章"
OFFICIAL = ("zhangsan", "张三")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
BIG_FILE = 10 * 2 ** 20

# Words for page text: the kind of thing an approval decision says, in ASCII (the standard Type 1
# font has no CJK glyphs; the cost that matters is the bytes per page, not the script).
WORDS = ("approval decision applicant enterprise registration licence article regulation municipal "
         "market supervision administration review opinion accepted conditions period valid from until "
         "address legal representative capital scope business food safety inspection record number").split()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))]


# --- documents ---------------------------------------------------------------------------------------

def make_document(pages: int, *, lines: int = 48, seed: int = 6) -> bytes:
    """A text PDF of A4 pages, each ~``lines`` × 75 characters (~3.5 KB of text, Flate-compressed like
    real documents), written with pyHanko's writer (classic xref table)."""
    import random

    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.generic import pdf_name
    from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

    rnd = random.Random(seed)
    w = PdfFileWriter(stream_xrefs=False)
    font = w.add_object(generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Font"), pdf_name("/Subtype"): pdf_name("/Type1"),
        pdf_name("/BaseFont"): pdf_name("/Helvetica")}))
    for n in range(1, pages + 1):
        ops = [b"BT /F1 16 Tf 72 790 Td (Benxi Municipal Administrative Approval, page %d) Tj ET" % n]
        for i in range(lines):
            text = " ".join(rnd.choice(WORDS) for _ in range(11))[:75]
            ops.append(b"BT /F1 9 Tf 72 %d Td (%s) Tj ET" % (760 - i * 14, text.encode()))
        content = generic.StreamObject(stream_data=b"\n".join(ops))
        content.compress()
        resources = generic.DictionaryObject({pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): font})})
        w.insert_page(PageObject(contents=w.add_object(content), media_box=[0, 0, 595, 842], resources=resources))
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


# --- measuring ---------------------------------------------------------------------------------------

class Limits:
    def __init__(self, seconds: float, iterations: int, min_iterations: int):
        self.seconds, self.iterations, self.min_iterations = seconds, iterations, min_iterations


def measure(label: str, fn, limits: Limits, *, warmup: bool = True) -> dict:
    """Call ``fn()`` sequentially until the time or iteration limit; wall latency of each call."""
    if warmup:
        fn()
    times = []
    start = time.perf_counter()
    cpu0 = time.process_time()
    while True:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        if len(times) >= limits.iterations or (elapsed >= limits.seconds and len(times) >= limits.min_iterations):
            break
    cpu = time.process_time() - cpu0
    out = summarize(times, elapsed)
    out["cpu_ms_per_op"] = round(cpu / len(times) * 1000, 1)
    log(f"  {label}: {out['per_s']}/s, p50 {out['p50_ms']} ms, p95 {out['p95_ms']} ms (n={out['n']})")
    return out


def summarize(times: list[float], elapsed: float) -> dict:
    return {"n": len(times), "per_s": round(len(times) / elapsed, 2),
            "p50_ms": round(statistics.median(times) * 1000, 1), "p95_ms": round(pct(times, 95) * 1000, 1)}


def measure_concurrent(label: str, fn, limits: Limits, concurrency: int) -> dict:
    """``concurrency`` threads calling ``fn()`` until the limits (iterations counted over all threads)."""
    fn()  # warm-up
    lock = threading.Lock()
    times: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()

    def worker():
        while True:
            with lock:
                elapsed = time.perf_counter() - start
                if len(times) >= limits.iterations or (elapsed >= limits.seconds and len(times) >= limits.min_iterations):
                    return
            t0 = time.perf_counter()
            try:
                fn()
            except Exception as exc:  # a failed call is counted, not fatal
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    if len(errors) > 20:
                        return
                continue
            with lock:
                times.append(time.perf_counter() - t0)

    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
    elapsed = time.perf_counter() - start
    if not times:
        raise RuntimeError(f"{label}: every call failed: {errors[:3]}")
    out = summarize(times, elapsed)
    out["errors"] = len(errors)
    if errors:
        out["first_error"] = errors[0]
    log(f"  {label}: {out['per_s']}/s, p50 {out['p50_ms']} ms, p95 {out['p95_ms']} ms (n={out['n']}, "
        f"errors {len(errors)})")
    return out


# --- the hub -----------------------------------------------------------------------------------------

def set_up(hub: Hub) -> dict:
    """Everything through the ``idp`` CLI; returns the seal id, the tool's client id and the PKCS#12."""
    password = "Bench-" + secrets.token_urlsafe(12) + "-9x"
    p12 = hub.tmp / "zhangsan.p12"
    p12_password = secrets.token_urlsafe(12)
    hub.cli("init")
    hub.cli("users", "create", "--username", OFFICIAL[0], "--password", password, "--name", OFFICIAL[1])
    hub.cli("departments", "create", "--code", DEPARTMENT[0], "--name", DEPARTMENT[1])
    hub.cli("officials", "add", "--username", OFFICIAL[0], "--department", DEPARTMENT[0])
    hub.cli("pki", "issue", "--username", OFFICIAL[0], "--out", str(p12), "--password", p12_password)
    seal = hub.cli("seals", "create", "--department", DEPARTMENT[0], "--name", SEAL_NAME)
    hub.cli("seals", "authorize", "--seal", str(seal["id"]), "--username", OFFICIAL[0])
    tool = hub.cli("clients", "create", "--name", "sealctl", "--auth-method", "none", "--grant-type", JWT_BEARER)
    return {"seal_id": seal["id"], "client_id": tool["client_id"], "p12": p12, "p12_password": p12_password}


def in_process(app, seal_id: int, docs: dict, limits: Limits) -> tuple[dict, dict]:
    """Applications and verifications through the service layer; the TSA and key-decryption costs."""
    from sqlalchemy import func, select

    from idp.db import db
    from idp.pki.models import Certificate
    from idp.accounts.models import Person
    from idp.seals import apply, service, tsa
    from idp.seals.models import IssuedTimestamp, Seal
    from idp.seals.verification import verify

    def principal():
        person = db.session.execute(select(Person).where(Person.username == OFFICIAL[0])).scalar_one()
        cert = db.session.execute(select(Certificate).where(
            Certificate.person_id == person.id, Certificate.usage == "login")).scalar_one()
        return person, apply.Proof(apply.API, cert)

    outputs: dict = {}

    def applying(kind: str, data: bytes):
        def call():
            with app.app_context():
                person, proof = principal()
                if kind == "cms":
                    done = apply.sign_file(person, seal_id, data, proof=proof)
                else:
                    done = apply.apply_pdf(person, seal_id, data, proof=proof)
                outputs[kind, len(data)] = done.output
        return call

    def verifying(data: bytes, signature: bytes | None):
        def call():
            with app.app_context():
                report = verify(data, signature)
                if report.verdict != "valid":
                    raise RuntimeError(f"verification: {report.to_dict()}")
        return call

    def tokens() -> int:
        with app.app_context():
            return db.session.execute(select(func.count()).select_from(IssuedTimestamp)).scalar()

    results: dict = {"apply": {}, "verify": {}}
    per_application: dict = {}
    for label, (kind, data) in docs.items():
        call = applying(kind, data)
        call()  # warm-up, not counted
        before = tokens()
        r = measure(f"apply {label}", call, limits, warmup=False)
        per_application[label] = round((tokens() - before) / r["n"], 2)
        r["tsa_tokens_per_op"] = per_application[label]
        results["apply"][label] = r
    for label, (kind, data) in docs.items():
        out = outputs[kind, len(data)]
        call = verifying(out, None) if kind == "pdf" else verifying(data, out)
        results["verify"][label] = measure(f"verify {label}", call, limits)

    # The parts, alone.
    import hashlib

    stamper = tsa.hub_timestamper()

    def one_token():
        with app.app_context():
            _, req = stamper.request_cms(hashlib.sha256(secrets.token_bytes(32)).digest(), "sha256")
            resp = tsa.issue(req)
            if resp["status"]["status"].native != "granted":
                raise RuntimeError("TSA refused")

    def credential():
        with app.app_context():
            service.credential_for(db.session.get(Seal, seal_id))

    parts = {"tsa.issue (one token, committed)": measure("tsa.issue", one_token, limits),
             "credential_for (seal key decryption)": measure("credential_for", credential, limits)}
    return results, {"parts": parts, "tsa_tokens_per_application": per_application}


def over_http(hub: Hub, setup: dict, docs: dict, limits: Limits, concurrency: int) -> dict:
    from clients.sealctl import hub as hubapi
    from clients.sealctl.keys import Pkcs12Key

    key = Pkcs12Key(setup["p12"], setup["p12_password"])
    state = {"value": hubapi.login(hub.issuer, key, setup["client_id"])}
    lock = threading.Lock()

    def current_state() -> dict:
        with lock:
            if state["value"]["expires_at"] - time.time() < 60:
                state["value"] = hubapi.login(hub.issuer, key, setup["client_id"])
            return state["value"]

    seal_id = setup["seal_id"]
    outputs: dict = {}

    def applying(label, kind, data):
        path = f"/api/seals/{seal_id}/" + ("sign" if kind == "cms" else "apply")
        ctype = "application/octet-stream" if kind == "cms" else "application/pdf"

        def call():
            resp = hubapi.call_raw(current_state(), key, "POST", path, body=data, content_type=ctype)
            outputs[label] = resp.content
        return call

    def verifying(data, signature):
        def call():
            status, report = hubapi.verify(hub.issuer, data, signature)
            if status != 200 or report["verdict"] != "valid":
                raise RuntimeError(f"verify: HTTP {status}, {report.get('verdict')}")
        return call

    results: dict = {"apply": {}, "verify": {}, "concurrency": concurrency}
    for label, (kind, data) in docs.items():
        results["apply"][label] = measure_concurrent(f"HTTP apply {label}", applying(label, kind, data), limits,
                                                     concurrency)
    for label, (kind, data) in docs.items():
        call = verifying(outputs[label], None) if kind == "pdf" else verifying(data, outputs[label])
        results["verify"][label] = measure_concurrent(f"HTTP verify {label}", call, limits, concurrency)
    return results


def profile(app, seal_id: int, docs: dict, what: str, n: int, top: int, out: str | None = None) -> None:
    """cProfile (CPU time) of ``n`` in-process calls of ``what``: ``apply`` (the 1-page PDF), ``sign``
    (the CMS file), ``verify`` (the sealed 1-page PDF) or ``tsa`` (one token); top functions."""
    import hashlib

    from sqlalchemy import select

    from idp.accounts.models import Person
    from idp.db import db
    from idp.pki.models import Certificate
    from idp.seals import apply, tsa
    from idp.seals.verification import verify

    (_, pdf_1), _, (_, big) = docs.values()
    sealed = []

    def applying(data, kind):
        with app.app_context():
            person = db.session.execute(select(Person).where(Person.username == OFFICIAL[0])).scalar_one()
            cert = db.session.execute(select(Certificate).where(
                Certificate.person_id == person.id, Certificate.usage == "login")).scalar_one()
            fn = apply.sign_file if kind == "cms" else apply.apply_pdf
            sealed[:] = [fn(person, seal_id, data, proof=apply.Proof(apply.API, cert)).output]

    def token():
        with app.app_context():
            _, req = tsa.hub_timestamper().request_cms(hashlib.sha256(secrets.token_bytes(32)).digest(), "sha256")
            tsa.issue(req)

    def verifying():
        with app.app_context():
            verify(sealed[0])

    applying(pdf_1, "pdf")
    once = {"apply": lambda: applying(pdf_1, "pdf"), "sign": lambda: applying(big, "cms"),
            "verify": verifying, "tsa": token}[what]

    once()
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    for _ in range(n):
        once()
    prof.disable()
    if out:
        prof.dump_stats(f"{out}.{what}")
    stats = pstats.Stats(prof, stream=sys.stdout)
    print(f"\ncProfile of {n} × {what} (CPU time)")
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top // 2)


# --- output ------------------------------------------------------------------------------------------

def table(results: dict) -> None:
    info = results["machine"]
    la0, la1 = info["loadavg_at_start"], info["loadavg_at_end"]
    print(f"\nseals, {results['backend']}, {info['cpu_count']} CPUs ({info['cpu_model']}), commit {info['commit']}"
          f"{' (dirty)' if info['worktree_dirty'] else ''}, load average {la0[0]:.2f} at the start, "
          f"{la1[0]:.2f} at the end")
    print(f"{'':<34}{'in-process, 1 thread':>34}", end="")
    http = results.get("http")
    print(f"{'HTTP, ' + str(http['concurrency']) + ' client threads':>34}" if http else "")
    print(f"{'operation':<34}{'ops/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'CPU ms':>8}", end="")
    print(f"{'ops/s':>12}{'p50 ms':>11}{'p95 ms':>11}" if http else "")
    for what in ("apply", "verify"):
        for label, r in results["in_process"][what].items():
            print(f"{what + ' ' + label:<34}{r['per_s']:>8}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['cpu_ms_per_op']:>8}",
                  end="")
            if http:
                h = http[what][label]
                err = f"  ({h['errors']} errors)" if h["errors"] else ""
                print(f"{h['per_s']:>12}{h['p50_ms']:>11}{h['p95_ms']:>11}{err}")
            else:
                print()
    print()
    for label, r in results["parts"]["parts"].items():
        print(f"{label:<40}{r['per_s']:>8}/s  p50 {r['p50_ms']} ms  p95 {r['p95_ms']} ms")
    tsa = results["parts"]["parts"]["tsa.issue (one token, committed)"]
    for label, n in results["parts"]["tsa_tokens_per_application"].items():
        app = results["in_process"]["apply"][label]
        print(f"apply {label}: {n:g} TSA token(s) per application: ~{round(n * tsa['cpu_ms_per_op'], 1)} of "
              f"{app['cpu_ms_per_op']} CPU ms ({round(100 * n * tsa['cpu_ms_per_op'] / app['cpu_ms_per_op'])} %), "
              f"~{round(n * tsa['p50_ms'], 1)} of {app['p50_ms']} ms p50 wall")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10, help="time per measurement (default 10)")
    ap.add_argument("--iterations", type=int, default=500, help="at most this many calls per measurement")
    ap.add_argument("--min-iterations", type=int, default=5, help="at least this many calls per measurement")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 s / 3 calls per measurement")
    ap.add_argument("--pages", type=int, default=50, help="pages of the long PDF (default 50)")
    ap.add_argument("--file-mib", type=float, default=BIG_FILE / 2 ** 20, help="size of the CMS file (default 10)")
    ap.add_argument("--no-http", action="store_true", help="in-process only")
    ap.add_argument("--concurrency", type=int, default=2, help="HTTP client threads (default 2)")
    ap.add_argument("--workers", type=int, default=2, help="idp serve --workers (default 2)")
    ap.add_argument("--threads", type=int, default=4, help="idp serve --threads (default 4)")
    ap.add_argument("--postgres", nargs="?", const="", metavar="URL",
                    help="PostgreSQL instead of SQLite: an empty database at URL, or without URL a throwaway "
                    "server (tests/services/postgres.py)")
    ap.add_argument("--profile", type=int, metavar="N", help="instead: cProfile N in-process calls of --profile-what")
    ap.add_argument("--profile-what", choices=("apply", "sign", "verify", "tsa"), action="append",
                    help="repeatable: apply (1-page PDF, default), sign (the CMS file), verify (a sealed 1-page PDF), tsa")
    ap.add_argument("--profile-top", type=int, default=40)
    ap.add_argument("--profile-out", metavar="PREFIX", help="also write the pstats to PREFIX.<what>")
    ap.add_argument("--json", metavar="FILE", help="also write every figure there")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.iterations, args.min_iterations = 1, 3, 1

    limits = Limits(args.seconds, args.iterations, args.min_iterations)
    info = machine_info()
    pg = None
    url = None
    if args.postgres == "":
        log("starting a throwaway PostgreSQL (tests/services/postgres.py) ...")
        pg = load_postgres_module().PostgresServer()
        pg.start()
        url = pg.create_database("idp_bench_seals")
    elif args.postgres:
        url = args.postgres
    hub = Hub(database_url=url, workers=args.workers, threads=args.threads, keep=args.keep, log=log)
    results: dict = {"backend": hub.backend, "seconds": args.seconds, "iterations": args.iterations,
                     "quick": args.quick, "machine": info}
    app = None
    try:
        t0 = time.perf_counter()
        setup = set_up(hub)
        results["setup_s"] = round(time.perf_counter() - t0, 1)
        results["setup_timings_s"] = hub.timings
        log(f"hub set up in {results['setup_s']} s ({hub.tmp})")
        pdf_1, pdf_n = make_document(1), make_document(args.pages)
        big = os.urandom(int(args.file_mib * 2 ** 20))
        docs = {"PDF, 1 page": ("pdf", pdf_1), f"PDF, {args.pages} pages": ("pdf", pdf_n),
                f"file, {args.file_mib:g} MiB (CMS)": ("cms", big)}
        results["documents"] = {label: len(data) for label, (_, data) in docs.items()}
        log(f"documents: {results['documents']}")

        os.environ.update({k: v for k, v in hub.env.items() if k.startswith("IDP_")})
        from idp import create_app

        app = create_app()
        if args.profile:
            for what in args.profile_what or ["apply"]:
                profile(app, setup["seal_id"], docs, what, args.profile, args.profile_top, args.profile_out)
            return 0
        log("in-process:")
        results["in_process"], results["parts"] = in_process(app, setup["seal_id"], docs, limits)
        if not args.no_http:
            hub.start()
            log(f"HTTP ({hub.issuer}, {args.workers} workers × {args.threads} threads, "
                f"{args.concurrency} client threads):")
            results["http"] = over_http(hub, setup, docs, limits, args.concurrency)
            results["http"]["workers"], results["http"]["threads"] = args.workers, args.threads
    finally:
        if app is not None:
            from idp.db import db

            with app.app_context():
                db.engine.dispose()
        hub.cleanup()
        if pg is not None:
            pg.close()
    info["loadavg_at_end"] = list(os.getloadavg())
    table(results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(json.dumps(results, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
