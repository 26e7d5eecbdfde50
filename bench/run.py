#!/usr/bin/env python3
"""Benchmark of the idp hub: sets up a throwaway hub (temp dir, ``idp init``, a user, three
clients, ``idp serve``), runs each scenario at a fixed concurrency for a fixed time, and prints
requests/s, p50/p99 latency, errors and CPU use. Optionally runs the peers in DIR in the same run
(``--peers DIR``) and prints ours/peer ratios, which are the only figures worth comparing on a
noisy machine. ``--profile`` instead profiles the token endpoint in-process.

    .venv/bin/python bench/run.py --duration 5
    .venv/bin/python bench/run.py --postgres --duration 5
    .venv/bin/python bench/run.py --peers /work/shared/peers --duration 5 --json bench/results/run.json
    .venv/bin/python bench/run.py --profile 2000

See bench/README.md.
"""
from __future__ import annotations

import argparse
import collections
import http.cookiejar
import json
import os
import re
import signal
import statistics
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flows import CodeFlow, code_exchange_iteration, cookie_header, mint_codes, sso_iteration  # noqa: E402
from hub import Hub, cli_default_threads, load_postgres_module  # noqa: E402
from loadgen import ACTIVE, Plan, judge_ok, run_plan, run_python, wrk_available  # noqa: E402
from oidc_login import basic_auth, get_user_tokens  # noqa: E402
from util import connection_spread, http_json, machine_info, pkce_pair  # noqa: E402

MAX_DURATION = 30.0
MAX_WARMUP = 5.0
MAX_REPEAT = 5
MAX_CONCURRENCY = 256
MINT_TIME_CAP = 45.0  # seconds of minting at most: codes must outlive the run (CodeFlow.code_ttl)
MAX_CODES = 200_000

SIMPLE = ("discovery", "jwks", "client_credentials", "userinfo", "introspect")
SCENARIOS = ("discovery", "jwks", "client_credentials", "code_exchange", "userinfo", "introspect", "sso_round_trip")
# PostgreSQL's own defaults for what the throwaway server turns off (tests/services/postgres.py).
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
# Hub settings a run may take from the environment and the report then shows (performance knobs only).
HUB_SETTINGS_SHOWN = ("IDP_SIGNING_RSA_BITS", "IDP_DPOP_NONCE", "IDP_CLIENT_CACHE_TTL", "IDP_DB_POOL_SIZE")
FLOWS = ("code_exchange", "sso_round_trip")  # always on the Python engine; peers' latencies printed too
PEER_SCENARIOS = ("discovery", "jwks", "client_credentials", "introspect", "userinfo") + FLOWS


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------- our plans
class Ours:
    """What the scenarios need from our hub: discovery, plans, a logged-in session, PKCE pairs."""

    def __init__(self, hub: Hub):
        self.hub = hub
        status, disco = http_json(hub.issuer + "/.well-known/openid-configuration")
        if status != 200:
            raise RuntimeError(f"discovery failed: HTTP {status} {disco}")
        self.disco = disco
        self.token_url = disco["token_endpoint"]
        self.authz_url = disco["authorization_endpoint"]
        c, s, cc = hub.code_client, hub.sso_client, hub.cc_client
        self.code_auth = basic_auth(c["client_id"], c["client_secret"])
        self.sso_auth = basic_auth(s["client_id"], s["client_secret"])
        self.cc_auth = basic_auth(cc["client_id"], cc["client_secret"])
        # The scripted login (HTML form, CSRF token) with the code client; keeps the session cookie.
        jar = http.cookiejar.CookieJar()
        t0 = time.perf_counter()
        tokens = get_user_tokens(disco, c["client_id"], c["client_secret"], hub.username, hub.password,
                                 hub.code_redirect, scope="openid profile email", jar=jar)
        hub.timings["scripted login + code exchange"] = round(time.perf_counter() - t0, 2)
        self.user_tokens = tokens
        self.cookie = cookie_header(jar, self.authz_url)
        if "idp_session" not in self.cookie:
            log(f"  note: no idp_session cookie after login (cookies: {[ck.name for ck in jar]})")
        self.pairs = [pkce_pair() for _ in range(256)]  # reused across codes: each code binds one pair
        # The code client (code_exchange, minting) and the second first-party client (sso_round_trip).
        self.code_flow = CodeFlow(self.authz_url, self.token_url, c["client_id"], self.code_auth, hub.code_redirect,
                                  self.cookie, code_ttl=120.0, pairs=self.pairs)  # CODE_TTL
        self.sso_flow = CodeFlow(self.authz_url, self.token_url, s["client_id"], self.sso_auth, hub.sso_redirect,
                                 self.cookie, pairs=self.pairs)

    def form_headers(self, auth: str) -> dict:
        return {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json"}

    def plan(self, scenario: str) -> Plan:
        d, at = self.disco, self.user_tokens["access_token"]
        if scenario == "discovery":
            return Plan("GET", self.hub.issuer + "/.well-known/openid-configuration", {"Accept": "application/json"})
        if scenario == "jwks":
            return Plan("GET", d["jwks_uri"], {"Accept": "application/json"})
        if scenario == "client_credentials":
            return Plan("POST", self.token_url, self.form_headers(self.cc_auth), b"grant_type=client_credentials",
                        b'"access_token"')
        if scenario == "userinfo":
            return Plan("GET", d["userinfo_endpoint"], {"Authorization": f"Bearer {at}", "Accept": "application/json"},
                        b"", b'"sub"')
        if scenario == "introspect":
            body = urllib.parse.urlencode({"token": at, "token_type_hint": "access_token"}).encode()
            return Plan("POST", d["introspection_endpoint"], self.form_headers(self.code_auth), body, ACTIVE)
        raise KeyError(scenario)


def code_batch(rate: float | None, args, code_ttl: float) -> tuple[int, float]:
    """How many codes to mint for one code_exchange run, and the minting time cap. ``rate``: a rate of
    the target's token endpoint seen earlier in this run (client_credentials or a code exchange); without
    one, minting runs until the time cap."""
    run = args.warmup + args.duration
    n = int(min(MAX_CODES, rate * run * 1.3 + 4 * args.concurrency + 100)) if rate else MAX_CODES
    # Minting (GET /authorize) is about as fast as exchanging (POST /token, two signatures): mint for
    # at most 1.5 x the run time; if the exchange outruns it, the run is flagged "exhausted". The first
    # code minted must still be valid when the run ends (oidc-provider's and DOT's live 60 s).
    cap = min(MINT_TIME_CAP, max(3.0, 1.5 * run), max(3.0, code_ttl - run - 5.0))
    return n, cap


def run_code_exchange(flow: CodeFlow, rate: float | None, args, common: dict, cpu_pids: dict, master_pid, at: float,
                      who: str) -> tuple[dict, dict]:
    """Mint codes over the session, then exchange them: (the exchange's result, the minting's result)."""
    n, cap = code_batch(rate, args, flow.code_ttl)
    codes, mres = mint_codes(flow, n, args.concurrency, cpu_pids, cap, timeout=args.timeout)
    log(f"  {who:<5} minted {len(codes)} codes (target {n}, time cap {cap:g} s) in {mres['elapsed_s']} s "
        f"({mres['rps']:,.0f}/s, {mres['errors']} errors)")
    res = sampled(lambda: run_python(code_exchange_iteration(flow, codes), flow.token_url, cpu_pids=cpu_pids,
                                     **common), master_pid, flow.token_url, at)
    res["codes_minted"] = mres["ok"]
    res["codes_left"] = len(codes)
    return res, mres


def sampled(fn, master_pid: int | None, url: str, at: float) -> dict:
    """Run ``fn()``; ``at`` seconds in, note how the client connections are spread over the workers."""
    import threading

    port = urllib.parse.urlsplit(url).port
    box = {}

    def sample():
        try:
            box["spread"] = connection_spread(master_pid, port)
        except Exception:  # noqa: BLE001 - a diagnostic only
            pass

    timer = threading.Timer(at, sample) if master_pid and port else None
    if timer:
        timer.daemon = True
        timer.start()
    try:
        res = fn()
    finally:
        if timer:
            timer.cancel()
    if box.get("spread"):
        res["conns_per_worker"] = box["spread"]
    return res


# --------------------------------------------------------------------------- aggregation
NUMERIC = ("rps", "p50_ms", "p90_ms", "p99_ms", "client_cpu_pct", "server_cpu_pct", "db_cpu_pct", "other_cpu_pct",
           "machine_cpu_pct", "elapsed_s")


def add_other_cpu(res: dict) -> dict:
    """CPU used during the run by processes that are neither the client, the server nor its database."""
    if res.get("machine_cpu_pct") is not None:
        mine = sum(res.get(k) or 0 for k in ("client_cpu_pct", "server_cpu_pct", "db_cpu_pct"))
        res["other_cpu_pct"] = round(max(0.0, res["machine_cpu_pct"] - mine), 1)
    return res


def summarize(runs: list[dict]) -> dict:
    """Median of each figure over the repeats (errors and ok counts are summed)."""
    out = {"runs": runs, "repeat": len(runs)}
    for k in NUMERIC:
        vals = [r[k] for r in runs if r.get(k) is not None]
        if vals:
            out[k] = round(statistics.median(vals), 3 if k.endswith("_ms") else 1)
    out["ok"] = sum(r.get("ok", 0) for r in runs)
    out["errors"] = sum(r.get("errors", 0) for r in runs)
    out["warmup_errors"] = sum(r.get("warmup_errors", 0) for r in runs)
    out["engine"] = runs[0].get("engine") if runs else None
    samples = [r["error_sample"] for r in runs if r.get("error_sample")]
    if samples:
        out["error_sample"] = samples[0]
    if any(r.get("exhausted") for r in runs):
        out["exhausted"] = True
    spreads = [r["conns_per_worker"] for r in runs if r.get("conns_per_worker")]
    if spreads:
        out["conns_per_worker"] = spreads
    return out


def fmt_spread(spreads) -> str:
    return ",".join("+".join(map(str, sp)) for sp in spreads) if spreads else "-"


def fmt_num(v, digits=1) -> str:
    if v is None:
        return "-"
    if isinstance(v, (int, float)) and abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def fmt_pct(v) -> str:
    return "-" if v is None else f"{v:.0f}%"


def print_table(report: dict) -> None:
    m, cfg = report["machine"], report["config"]
    print()
    print(f"idp benchmark  commit {m.get('commit')}{' (dirty tree)' if m.get('worktree_dirty') else ''}  "
          f"db {cfg['database_backend']}{' (durable)' if cfg.get('postgres_durable') else ''}  {cfg['workers']} workers x {cfg['threads']} threads  "
          f"ID tokens {cfg.get('id_token_alg', 'RS256')}  "
          + "".join(f"{k}={v}  " for k, v in (cfg.get("hub_settings") or {}).items()) +
          f"concurrency {cfg['concurrency']}  {cfg['duration_s']:g} s x {cfg['repeat']} "
          f"({'median' if cfg['repeat'] > 1 else 'single run'}), warmup {cfg['warmup_s']:g} s")
    print(f"machine: {m.get('cpu_count')} CPUs ({m.get('cpu_model')}), Python {m.get('python')}, "
          f"load avg at start {', '.join(f'{x:.2f}' for x in (m.get('loadavg_at_start') or []))}")
    has_db = any(r.get("db_cpu_pct") is not None for r in report["ours"].values())
    hdr = f"{'scenario':<22} {'engine':<7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'client CPU':>10} " \
          f"{'server CPU':>10}" + (f" {'db CPU':>7}" if has_db else "") + f" {'other CPU':>9}  conns/worker"
    print()
    print(hdr)
    print("-" * len(hdr))
    for name, r in report["ours"].items():
        unit = " it" if name == "sso_round_trip" else ""
        line = (f"{name:<22} {r.get('engine') or '-':<7} {fmt_num(r.get('rps')) + unit:>9} {fmt_num(r.get('p50_ms'), 2):>8} "
                f"{fmt_num(r.get('p99_ms'), 2):>8} {r.get('errors', 0):>7} {fmt_pct(r.get('client_cpu_pct')):>10} "
                f"{fmt_pct(r.get('server_cpu_pct')):>10}" + (f" {fmt_pct(r.get('db_cpu_pct')):>7}" if has_db else "")
                + f" {fmt_pct(r.get('other_cpu_pct')):>9}  {fmt_spread(r.get('conns_per_worker'))}")
        print(line)
    notes = []
    for name, r in report["ours"].items():
        if r.get("warmup_errors"):
            notes.append(f"{name}: {r['warmup_errors']} errors during warmup (not in the table)")
        if r.get("error_sample"):
            notes.append(f"{name}: errors, e.g. {r['error_sample']}")
        if r.get("exhausted"):
            notes.append(f"{name}: ran out of pre-minted codes; rate measured over {r.get('elapsed_s')} s")
        if r.get("note"):
            notes.append(f"{name}: {r['note']}")
    for exc in report.get("server_exceptions", []):
        notes.append(f"server log: {exc['count']} x {exc['exception'][:200]}")
    for n in notes:
        print(f"  * {n}")
    print("  req/s counts ok responses; sso_round_trip counts iterations (GET /authorize -> 302 + POST /token) "
          "and its latencies are per iteration.")
    print("  CPU: 100% = one core; client = load generator (wrk process or this Python process), "
          "server = Granian main + workers;\n  other = every other process on the machine during the run "
          f"(the machine has {m.get('cpu_count')} cores: a high figure means the numbers are noisy).")
    print("  conns/worker: client connections held by each Granian worker mid-run (one group per repeat); "
          "16+0 means one worker served everything.")

    peers = report.get("peers")
    if peers:
        print()
        print("vs peers, same run (req/s; ratio = ours / peer, >1 means we are faster; with --repeat, the median "
              "of the per-repeat ratios, each from back-to-back runs):")
        cols = [(p["name"], p["label"]) for p in peers.values()]
        hdr = f"{'scenario':<20} {'ours':>9}" + "".join(f" {label[:34]:>34} {'ratio':>6}" for _, label in cols)
        print(hdr)
        print("-" * len(hdr))
        for s in PEER_SCENARIOS:
            ours = report["ours"].get(s)
            if not ours:
                continue
            line = f"{s:<20} {fmt_num(ours.get('rps')):>9}"
            for pname, _ in cols:
                pr = peers[pname]["results"].get(s)
                if pr is None:
                    line += f" {'skipped':>34} {'-':>6}"
                    continue
                note = peers[pname]["notes"].get(s)
                cell = fmt_num(pr.get("rps")) + (f" ({note})" if note else "")
                ratio = report["ratios"].get(pname, {}).get(s)
                line += f" {cell:>34} {(f'{ratio:.2f}' if ratio is not None else '-'):>6}"
            print(line)
        for s in FLOWS:  # latency per iteration matters most here (issue 7: SSO round trip p50 at one user)
            ours = report["ours"].get(s)
            if not ours:
                continue
            cells = [f"ours {fmt_num(ours.get('p50_ms'), 2)} / {fmt_num(ours.get('p99_ms'), 2)}"]
            for pname, label in cols:
                pr = peers[pname]["results"].get(s)
                if pr is not None:
                    cells.append(f"{label} {fmt_num(pr.get('p50_ms'), 2)} / {fmt_num(pr.get('p99_ms'), 2)}")
            print(f"  {s} p50 / p99 ms (concurrency {report['config']['concurrency']}, Python engine, per "
                  f"{'iteration' if s == 'sso_round_trip' else 'request'}): " + ", ".join(cells))
        for pname, p in peers.items():
            for s, why in p["skipped"].items():
                print(f"  * {p['label']} {s}: skipped ({why})")
            for s, pr in p["results"].items():
                if pr.get("errors"):
                    print(f"  * {p['label']} {s}: {pr['errors']} errors, e.g. {pr.get('error_sample')}")
                if pr.get("exhausted"):
                    print(f"  * {p['label']} {s}: ran out of pre-minted codes; rate measured over "
                          f"{pr.get('elapsed_s')} s")
        print("  p50 / p99 ms per peer are in the JSON output.")


# --------------------------------------------------------------------------- profile
def _short_path(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    repo = str(Path(__file__).resolve().parent.parent) + "/"
    return path.replace(repo, "")


def run_profile(hub: Hub, n: int, profiler: str, top: int, clock: str = "cpu", plan: Plan | None = None,
                scenario: str = "client_credentials") -> dict:
    """One single-request scenario (``plan``; default the token endpoint, client_credentials) in-process
    through the Flask test client."""
    import cProfile
    import pstats

    for k, v in hub.env.items():
        if k.startswith("IDP_"):
            os.environ[k] = v
    from idp import create_app

    app = create_app()
    client = app.test_client()
    if plan is None:
        plan = Plan("POST", hub.issuer + "/token",
                    {"Authorization": basic_auth(hub.cc_client["client_id"], hub.cc_client["client_secret"]),
                     "Content-Type": "application/x-www-form-urlencoded"}, b"grant_type=client_credentials",
                    b'"access_token"')
    path = plan.url[len(hub.issuer):]

    def one():
        r = client.open(path, method=plan.method, data=plan.body or None, headers=plan.headers)
        if r.status_code != 200 or not judge_ok(plan.expect, r.data):
            raise RuntimeError(f"{scenario}: HTTP {r.status_code} {r.data[:200]!r}")

    for _ in range(min(100, n)):
        one()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        one()
    plain, plain_cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"requests": n, "profiler": profiler, "clock": clock, "unprofiled_rps_one_thread": round(n / plain, 1),
           "unprofiled_cpu_ms_per_request": round(1000 * plain_cpu / n, 3)}
    log(f"  in-process, unprofiled: {n} requests in {plain:.2f} s = {n / plain:,.0f} req/s (one thread), "
        f"{1000 * plain_cpu / n:.2f} ms CPU per request")

    if profiler == "pyinstrument":
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0005)
        prof.start()
        for _ in range(n):
            one()
        prof.stop()
        text = prof.output_text(unicode=False, color=False, show_all=False)
        out["text"] = text
        print(text)
        return out

    # CPU clock by default: on a shared machine, wall time also counts the time other processes had the core.
    prof = cProfile.Profile(time.process_time) if clock == "cpu" else cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for _ in range(n):
        one()
    prof.disable()
    profiled = time.perf_counter() - t0
    st = pstats.Stats(prof)
    total = st.total_tt
    rows = []
    for (file, line, func), (cc, nc, tt, ct, _callers) in st.stats.items():
        name = f"{_short_path(file)}:{line}({func})" if line else func
        rows.append({"function": name, "ncalls": nc, "tottime_s": round(tt, 4), "cumtime_s": round(ct, 4),
                     "cum_ms_per_request": round(1000 * ct / n, 4), "cum_pct": round(100 * ct / total, 1) if total else None})
    by_cum = sorted(rows, key=lambda r: r["cumtime_s"], reverse=True)
    by_tot = sorted(rows, key=lambda r: r["tottime_s"], reverse=True)
    out.update(profiled_s=round(profiled, 3), profiled_total_tt_s=round(total, 3), top_cumulative=by_cum[:top],
               top_tottime=by_tot[:top])

    def table(title, rows_):
        print()
        print(title)
        print(f"{'ncalls':>9} {'tottime s':>9} {'cumtime s':>9} {'cum ms/req':>10} {'cum %':>6}  function")
        for r in rows_:
            print(f"{r['ncalls']:>9} {r['tottime_s']:>9.3f} {r['cumtime_s']:>9.3f} {r['cum_ms_per_request']:>10.3f} "
                  f"{r['cum_pct']:>5.1f}%  {r['function']}")

    print()
    print(f"profile: {n} x {plan.method} {path} ({scenario}) in-process via the Flask test client, "
          f"cProfile ({clock} clock); {profiled:.2f} s wall profiled ({n / profiled:,.0f} req/s under the profiler); "
          f"unprofiled {n / plain:,.0f} req/s, {1000 * plain_cpu / n:.2f} ms CPU per request")
    table(f"top {top} by cumulative time", by_cum[:top])
    table(f"top {min(top, 20)} by own time (tottime)", by_tot[:min(top, 20)])
    return out


# --------------------------------------------------------------------------- main
def _note_rate(est_rate: dict, who: str, scenario: str, res: dict) -> None:
    """Remember a token endpoint rate of ``who`` to size its next batch of codes: client_credentials is an
    upper bound (a code exchange also signs an ID token and writes more); a code exchange replaces it
    (raised when the batch ran out, since the rate it saw was capped by the codes)."""
    rps = res.get("rps")
    if not rps:
        return
    if scenario == "client_credentials":
        est_rate[who] = max(est_rate.get(who) or 0, rps)
    elif scenario == "code_exchange":
        est_rate[who] = max(rps, 50.0) * (1.6 if res.get("exhausted") else 1.0)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help=f"measured seconds per run (cap {MAX_DURATION:g})")
    ap.add_argument("--warmup", type=float, default=1.0, help=f"unmeasured seconds before each run (cap {MAX_WARMUP:g})")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=1, help=f"runs per scenario; the median is reported (cap {MAX_REPEAT})")
    ap.add_argument("--workers", type=int, default=2, help="idp serve --workers")
    ap.add_argument("--threads", type=int, default=None, help="idp serve --threads (default: the CLI's)")
    ap.add_argument("--id-token-alg", choices=("RS256", "ES256"), default="RS256",
                    help="the code-flow clients' ID token algorithm (RS256, the hub's default, signs with RSA-3072; "
                         "the node peer signs ES256)")
    ap.add_argument("--engine", choices=("wrk", "python"), default=None,
                    help="client for the single-request scenarios (default: wrk if on PATH); "
                         "code_exchange and sso_round_trip always use the Python engine")
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, s")
    ap.add_argument("--scenario", dest="scenarios", action="append", choices=SCENARIOS,
                    help="run only these (repeatable; default: all)")
    db = ap.add_mutually_exclusive_group()
    db.add_argument("--database-url", help="use this database (e.g. postgresql+psycopg://...); default: SQLite in "
                                           "the temp dir. It must be empty or hold only idp's tables.")
    db.add_argument("--postgres", action="store_true",
                    help="start a throwaway PostgreSQL (tests/services/postgres.py) for the hub; like the tests', it "
                         "runs with fsync, synchronous_commit and full_page_writes off unless --durable")
    ap.add_argument("--durable", action="store_true",
                    help="with --postgres: fsync, synchronous_commit and full_page_writes on (PostgreSQL's defaults, "
                         "what production runs): every commit waits for the disk")
    ap.add_argument("--peers", metavar="DIR", help="also run discovery/jwks/client_credentials/introspect/userinfo/"
                                                    "code_exchange/sso_round_trip against the peers in DIR "
                                                    "(e.g. /work/shared/peers)")
    ap.add_argument("--hello", action="store_true",
                    help="also serve bench/hello_app.py (bare Flask) under Granian with the same workers and "
                         "threads, and run discovery/jwks against its GET /hello.json (the ceiling reference)")
    ap.add_argument("--json", metavar="FILE", help="write every figure and machine info to FILE")
    ap.add_argument("--profile", nargs="?", type=int, const=2000, metavar="N",
                    help="instead of the load test: profile N (default 2000) client_credentials token requests "
                         "in-process and print the top functions")
    ap.add_argument("--profiler", choices=("cprofile", "pyinstrument"), default="cprofile")
    ap.add_argument("--profile-top", type=int, default=30)
    ap.add_argument("--profile-clock", choices=("cpu", "wall"), default="cpu",
                    help="cProfile timer: process CPU time (default; robust to other load) or wall time")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (database, keys, server log)")
    args = ap.parse_args(argv)
    if args.durable and not args.postgres:
        ap.error("--durable applies to the throwaway PostgreSQL: add --postgres")
    args.duration = min(max(args.duration, 1.0), MAX_DURATION)
    args.warmup = min(max(args.warmup, 0.0), MAX_WARMUP)
    args.repeat = min(max(args.repeat, 1), MAX_REPEAT)
    args.concurrency = min(max(args.concurrency, 1), MAX_CONCURRENCY)
    if args.threads is None:
        args.threads = cli_default_threads()
    if args.engine is None:
        args.engine = "wrk" if wrk_available() else "python"
    if args.engine == "wrk" and not wrk_available():
        ap.error("--engine wrk: wrk is not on PATH (apt-get install wrk)")
    args.scenarios = [s for s in SCENARIOS if s in (args.scenarios or SCENARIOS)]
    if args.profiler == "pyinstrument":
        try:
            import pyinstrument  # noqa: F401
        except ImportError:
            ap.error("--profiler pyinstrument: not installed (pip install pyinstrument), or use cprofile")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    started = time.perf_counter()
    report: dict = {"machine": machine_info(), "ours": {}, "ratios": {}}
    pg = hub = None
    peers = []
    try:
        db_url = args.database_url
        if args.postgres:
            log("starting a throwaway PostgreSQL (tests/services/postgres.py) ...")
            pgmod = load_postgres_module()
            pg = pgmod.PostgresServer(settings=DURABLE if args.durable else None)
            pg.start()
            db_url = pg.url
        hub = Hub(database_url=db_url, workers=args.workers, threads=args.threads, keep=args.keep, log=log,
                  id_token_alg=args.id_token_alg)
        report["config"] = {
            "database_backend": hub.backend, "workers": args.workers, "threads": args.threads,
            "id_token_alg": args.id_token_alg,
            "concurrency": args.concurrency, "duration_s": args.duration, "warmup_s": args.warmup,
            "repeat": args.repeat, "engine": args.engine, "wrk_threads": args.wrk_threads,
            "scenarios": args.scenarios, "issuer": hub.issuer, "postgres_throwaway": bool(pg),
            "postgres_durable": bool(pg) and args.durable,
            "argv": sys.argv[1:],
            # Settings the hub took from this environment (e.g. IDP_SIGNING_RSA_BITS=2048); never secrets.
            "hub_settings": {k: v for k, v in sorted(os.environ.items()) if k in HUB_SETTINGS_SHOWN},
        }
        log(f"setting up a throwaway hub in {hub.tmp} ({hub.backend}) ...")
        hub.setup()
        log(f"  {hub.timings}")

        if args.profile:
            scenario = args.scenarios[0] if len(args.scenarios) < len(SCENARIOS) else "client_credentials"
            plan = None
            if scenario != "client_credentials":  # a user's token (userinfo, introspect) needs a real login
                hub.start()
                plan = Ours(hub).plan(scenario)
                hub.stop()
            report["profile"] = run_profile(hub, args.profile, args.profiler, args.profile_top, args.profile_clock,
                                            plan, scenario)
            return _finish(report, args, started, hub)

        hub.start()
        log(f"  idp serve on {hub.issuer} (pid {hub.pid}, {args.workers} workers x {args.threads} threads), "
            f"ready in {hub.timings['serve ready']} s")
        ours = Ours(hub)
        cpu_pids = {"server": [hub.pid]}
        if pg is not None and pg.pid:
            cpu_pids["db"] = [pg.pid]

        if args.peers:
            from peers import start_peers

            log(f"starting peers from {args.peers} ...")
            peers = start_peers(args.peers, args.workers, log=log)
        if args.hello:
            from peers import start_hello

            peers.append(start_hello(args.workers, args.threads, log=log))
        if peers:
            report["peers"] = {p.name: {"name": p.name, "label": p.label, "results": {}, "notes": p.notes,
                                        "skipped": p.skipped} for p in peers}

        n_runs = len(args.scenarios) * args.repeat
        n_peer = sum(1 for p in peers for s in args.scenarios if s in p.plans) * args.repeat
        log(f"running {n_runs} + {n_peer} (peers) measurements of {args.warmup:g} + {args.duration:g} s "
            f"(~{(n_runs + n_peer) * (args.warmup + args.duration + 0.5) / 60:.1f} min, plus code minting)")

        # requests/s of each target's token endpoint seen so far ("ours", peer names): sizes the code batches
        est_rate: dict = {}
        mint_stats = []
        for scenario in args.scenarios:
            runs, peer_runs = [], collections.defaultdict(list)
            for rep in range(args.repeat):
                common = dict(concurrency=args.concurrency, duration=args.duration, warmup=args.warmup,
                              timeout=args.timeout)
                at = args.warmup + (0.3 if args.engine == "wrk" else 0) + args.duration / 2  # mid-run
                if scenario in SIMPLE:
                    plan = ours.plan(scenario)
                    res = sampled(lambda: run_plan(plan, engine=args.engine, wrk_threads=args.wrk_threads,
                                                   cpu_pids=cpu_pids, **common), hub.pid, hub.issuer, at)
                elif scenario == "code_exchange":
                    res, mres = run_code_exchange(ours.code_flow, est_rate.get("ours") or 1000.0, args, common,
                                                  cpu_pids, hub.pid, at, "ours")
                    mint_stats.append(add_other_cpu(mres))
                elif scenario == "sso_round_trip":
                    res = sampled(lambda: run_python(sso_iteration(ours.sso_flow), hub.issuer, cpu_pids=cpu_pids,
                                                     **common), hub.pid, hub.issuer, at)
                else:
                    raise KeyError(scenario)
                _note_rate(est_rate, "ours", scenario, res)
                res["target"] = hub.issuer
                runs.append(add_other_cpu(res))
                log(f"  ours  {scenario:<18} run {rep + 1}: {fmt_num(res.get('rps'))} /s, p50 {res.get('p50_ms')} ms, "
                    f"p99 {res.get('p99_ms')} ms, errors {res.get('errors')}, client CPU {res.get('client_cpu_pct')}%, "
                    f"server CPU {res.get('server_cpu_pct')}%")
                for p in peers:  # same scenario, same repeat, right after ours: ratios from neighbouring runs
                    if scenario not in p.plans:
                        continue
                    plan, inst = p.plans[scenario]
                    pcpu = {"server": [inst.pid]}
                    try:
                        if scenario == "code_exchange":
                            pres, pmint = run_code_exchange(plan, est_rate.get(p.name), args,
                                                            common, pcpu, inst.pid, at, p.name)
                            pres["minting"] = add_other_cpu(pmint)
                        elif scenario == "sso_round_trip":
                            pres = sampled(lambda: run_python(sso_iteration(plan), plan.authz_url, cpu_pids=pcpu,
                                                              **common), inst.pid, plan.authz_url, at)
                        else:
                            pres = sampled(lambda: run_plan(plan, engine=args.engine, wrk_threads=args.wrk_threads,
                                                            cpu_pids=pcpu, **common), inst.pid, plan.url, at)
                    except Exception as e:  # noqa: BLE001 - reported, the run goes on
                        pres = {"engine": args.engine, "ok": 0, "errors": 1, "rps": None,
                                "error_sample": f"{type(e).__name__}: {e}"[:200]}
                    _note_rate(est_rate, p.name, scenario, pres)
                    pres["target"] = plan.token_url if isinstance(plan, CodeFlow) else plan.url
                    peer_runs[p.name].append(add_other_cpu(pres))
                    log(f"  {p.name:<5} {scenario:<18} run {rep + 1}: {fmt_num(pres.get('rps'))} /s, "
                        f"p50 {pres.get('p50_ms')} ms, errors {pres.get('errors')}, "
                        f"server CPU {pres.get('server_cpu_pct')}%")
            report["ours"][scenario] = summarize(runs)
            if scenario == "code_exchange" and mint_stats:
                report["ours"][scenario]["minting"] = mint_stats
            for pname, pr in peer_runs.items():
                report["peers"][pname]["results"][scenario] = summarize(pr)
                # Paired: ours and the peer ran back to back in each repeat; the median of those ratios.
                pairs = [a["rps"] / b["rps"] for a, b in zip(runs, pr) if a.get("rps") and b.get("rps")]
                if pairs:
                    report["ratios"].setdefault(pname, {})[scenario] = round(statistics.median(pairs), 3)
        if mint_stats:
            # Minting is itself a measurement of GET /authorize for a signed-in user (first-party client).
            for m_ in mint_stats:
                m_.pop("exhausted", None)  # minting stops at its target by design
            report["ours"]["authorize (minting)"] = {**summarize(mint_stats),
                                                     "note": "GET /authorize -> 302 with a code, logged-in session, "
                                                             "while minting codes for code_exchange"}
        return _finish(report, args, started, hub)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if args.peers or args.hello:
            from peers import stop_peers

            stop_peers()
        if hub is not None:
            if hub.proc is not None and hub.proc.poll() is not None and hub.proc.returncode not in (0, -15):
                log(f"idp serve exited with {hub.proc.returncode}; log tail:\n{hub.server_log_tail()}")
            hub.cleanup()
            if args.keep:
                log(f"kept {hub.tmp}")
        if pg is not None:
            pg.close()


EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Warning|Violation)\w*)(:.*)?$")


def server_exceptions(text: str) -> list[dict]:
    """Exceptions the server logged (the last line of each traceback), counted by type and message."""
    found: collections.Counter = collections.Counter()
    in_tb, last = False, None
    for line in text.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            in_tb = True
            continue
        if last and line.startswith(("The above exception was the direct cause", "During handling of the above")):
            found[last] -= 1  # a chained exception: count only the last one of the chain
            if found[last] <= 0:
                del found[last]
            last = None
            continue
        if in_tb and not line.startswith((" ", "\t")) and EXC_LINE.match(line):
            last = line.strip()[:300]
            found[last] += 1
            in_tb = False
    return [{"exception": k, "count": v} for k, v in found.most_common(10)]


def _finish(report: dict, args, started: float, hub: Hub) -> int:
    report["total_s"] = round(time.perf_counter() - started, 1)
    report["setup_timings_s"] = hub.timings
    tail = hub.server_log_tail(3000)
    if tail.strip():
        report["server_log_tail"] = tail
    report["server_exceptions"] = server_exceptions(hub.server_log_tail(10_000_000))
    if report["ours"]:
        print_table(report)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        log(f"wrote {path}")
    log(f"total {report['total_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
