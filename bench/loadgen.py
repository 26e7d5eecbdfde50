"""Load engines for bench/run.py: ``wrk`` (C client driven by a generated Lua script) and a
stdlib asyncio engine (raw HTTP/1.1 keep-alive connections, one event loop).

Adapted from /work/shared/bench/load.py (the wrk Lua script, the nearest-rank percentiles and
the "ok" rules are taken from there); the aiohttp engine was replaced by a dependency-free
asyncio client that can also run multi-request iterations (code exchange, SSO round trip).

A response counts as ok when it is HTTP 200 (or the status the plan expects) and its body
contains the expected marker (``"access_token"``, ``"sub"``, ``"active": true`` ...).
rps counts ok responses (or ok iterations) only.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

from cpu import tree_cpu_seconds

ACTIVE = b'"active"'  # special marker: the JSON body must have "active": true


@dataclass
class Plan:
    """One request, repeated: method, url, headers, body, and how to judge the response."""

    method: str
    url: str
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    expect: bytes | None = None


def judge_ok(expect: bytes | None, body: bytes) -> bool:
    if expect is None:
        return True
    if expect == ACTIVE:
        try:
            return json.loads(body).get("active") is True
        except ValueError:
            return False
    return expect in body


def percentiles(lat: list[float]) -> dict:
    if not lat:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None}
    lat.sort()
    n = len(lat)

    def p(q):  # nearest-rank
        return round(lat[min(n - 1, max(0, int(q * n + 0.999999) - 1))] * 1000, 3)

    return {"p50_ms": p(0.50), "p90_ms": p(0.90), "p99_ms": p(0.99)}


_TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float | None:
    """CPU seconds all processes on the machine have used (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    guest = sum(v[8:10]) if len(v) > 9 else 0  # already counted in user/nice
    return (sum(v) - idle - guest) / _TICK


def _cpu_snapshot(cpu_pids: dict | None) -> dict:
    """CPU seconds so far of each named process tree, e.g. {"server": [pid], "db": [pid]}, and of the
    whole machine ("machine"), so that what other processes used during a run can be shown."""
    out = {name: tree_cpu_seconds(pids) for name, pids in (cpu_pids or {}).items() if pids}
    m = _machine_busy_seconds()
    if m is not None:
        out["machine"] = m
    return out


def _cpu_pct(before: dict, after: dict, wall: float) -> dict:
    return {f"{name}_cpu_pct": round(100 * (after[name] - before[name]) / wall, 1) if wall else None
            for name in before}


# --------------------------------------------------------------------------- wrk engine
WRK_LUA = r"""
local expect = %(expect)s
local plain = %(plain)s  -- false: expect is a Lua pattern
wrk.method = %(method)s
wrk.body = %(body)s
wrk.headers = {}
%(headers)s
bad_n = 0  -- global: read per thread with thread:get() in done()
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status < 400 and (status ~= 200 or (expect ~= nil and not string.find(body, expect, 1, plain))) then bad_n = bad_n + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + (t:get("bad_n") or 0) end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%d,"duration_us":%%d,"bad":%%d,"status":%%d,"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d,"p50":%%d,"p90":%%d,"p99":%%d}\n',
    summary.requests, summary.duration, bad, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


_WRK_ERRORS = ("status", "bad", "connect", "read", "write", "timeout")


def _wrk_result(stdout: str) -> dict | None:
    line = next((ln for ln in (stdout or "").splitlines() if ln.startswith("WRKJSON ")), None)
    return json.loads(line[len("WRKJSON "):]) if line else None


def lua_str(b: bytes | str) -> str:
    s = b.decode() if isinstance(b, bytes) else b
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(plan: Plan, *, concurrency: int, duration: float, warmup: float, threads: int = 1,
            timeout: float = 10.0, cpu_pids: dict | None = None) -> dict:
    wrk = shutil.which("wrk")
    if not wrk:
        raise RuntimeError("wrk not found (apt-get install wrk), or use --engine python")
    expect, plain = plan.expect, "true"
    if expect == ACTIVE:
        expect, plain = b'"active"%s*:%s*true', "false"
    script = WRK_LUA % {
        "expect": lua_str(expect) if expect else "nil",
        "plain": plain,
        "method": lua_str(plan.method),
        "body": lua_str(plan.body) if plan.body else "nil",
        "headers": "\n".join(f"wrk.headers[{lua_str(k)}] = {lua_str(v)}" for k, v in plan.headers.items()),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    threads = max(1, min(threads, concurrency))
    base = [wrk, "-t", str(threads), "-c", str(concurrency), "--timeout", f"{max(1, int(timeout))}s", "-s", path]
    try:
        warm = None
        if warmup > 0:
            wp = subprocess.run(base + ["-d", f"{max(1, round(warmup))}s", plan.url], capture_output=True,
                                text=True, timeout=warmup + 30)
            warm = _wrk_result(wp.stdout)
        srv0 = _cpu_snapshot(cpu_pids)
        t0 = time.perf_counter()
        ru0 = os.times()
        p = subprocess.run(base + ["-d", f"{max(1, round(duration))}s", plan.url], capture_output=True,
                           text=True, timeout=duration + 30)
        ru1 = os.times()
        wall = time.perf_counter() - t0
        srv = _cpu_pct(srv0, _cpu_snapshot(cpu_pids), wall)
    finally:
        os.unlink(path)
    r = _wrk_result(p.stdout)
    if p.returncode != 0 or r is None:
        raise RuntimeError(f"wrk failed rc={p.returncode}: {p.stdout[-500:]} {p.stderr[-500:]}")
    elapsed = r["duration_us"] / 1e6
    errors = r["status"] + r["bad"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    ok = max(0, r["requests"] - r["status"] - r["bad"])
    child_cpu = (ru1.children_user - ru0.children_user) + (ru1.children_system - ru0.children_system)
    out = {"engine": "wrk", "ok": ok, "errors": errors, "elapsed_s": round(elapsed, 3),
           "rps": round(ok / elapsed, 1) if elapsed else 0.0,
           **({"p50_ms": round(r["p50"] / 1000, 3), "p90_ms": round(r["p90"] / 1000, 3),
               "p99_ms": round(r["p99"] / 1000, 3)} if r["requests"] else
              {"p50_ms": None, "p90_ms": None, "p99_ms": None}),
           "client_cpu_pct": round(100 * child_cpu / wall, 1) if wall else None, "wrk_threads": threads}
    out.update(srv)
    if warm is not None:
        out["warmup_errors"] = sum(warm[k] for k in _WRK_ERRORS)
    if errors:
        out["error_sample"] = ", ".join(f"{k}={r[k]}" for k in ("status", "bad", "connect", "read", "write", "timeout")
                                        if r[k])
    return out


# --------------------------------------------------------------------------- asyncio engine
class Exhausted(Exception):
    """The iteration has nothing left to do (e.g. no pre-minted authorization code left)."""


class IterationFailed(Exception):
    """A response that is not what the scenario expects; the message is the error sample."""


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict, body: bytes):
        self.status, self.headers, self.body = status, headers, body


class HttpConn:
    """One keep-alive HTTP/1.1 connection (reopened after an error or ``Connection: close``)."""

    def __init__(self, host: str, port: int, timeout: float):
        self.host, self.port, self.timeout = host, port, timeout
        self.reader = self.writer = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, raw: bytes) -> Response:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._request(raw)
        except BaseException:
            self.close()
            raise

    async def _request(self, raw: bytes) -> Response:
        if self.writer is None:
            await self._open()
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for ln in lines[1:]:
            if ln:
                k, _, v = ln.partition(b":")
                headers[k.strip().lower()] = v.strip()
        if b"content-length" in headers:
            body = await self.reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")  # no trailers expected
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(chunks)
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = await self.reader.read()
            self.close()
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return Response(status, headers, body)


def raw_request(method: str, url: str, headers: dict | None = None, body: bytes = b"") -> bytes:
    """The bytes of one HTTP/1.1 request (built once, sent many times)."""
    u = urllib.parse.urlsplit(url)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {u.netloc}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def static_iteration(plan: Plan):
    """An iteration that sends the same request and judges it like the wrk engine does."""
    raw = raw_request(plan.method, plan.url, plan.headers, plan.body)

    async def one(conn: HttpConn) -> None:
        r = await conn.request(raw)
        if r.status != 200 or not judge_ok(plan.expect, r.body):
            raise IterationFailed(f"HTTP {r.status}: {r.body[:120]!r}")
    return one


async def _run_async(iteration, host, port, concurrency, duration, warmup, timeout, cpu_pids) -> dict:
    perf = time.perf_counter
    lat: list[float] = []
    counts = {"ok": 0, "errors": 0, "warmup_errors": 0}
    errors: Counter = Counter()
    state = {"measuring": False, "exhausted": False, "last": None}
    conns = [HttpConn(host, port, timeout) for _ in range(concurrency)]

    async def worker(conn: HttpConn, deadline: float) -> None:
        while not state["exhausted"] and perf() < deadline:
            t0 = perf()
            try:
                await iteration(conn)
                why = None
            except Exhausted:
                state["exhausted"] = True
                state["last"] = perf()
                return
            except IterationFailed as e:
                why = str(e)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as e:
                why = f"{type(e).__name__}: {e}"[:160]
            if not state["measuring"]:
                if why is not None:
                    counts["warmup_errors"] += 1
                    errors[why] += 1
                continue
            if why is None:
                counts["ok"] += 1
                lat.append(perf() - t0)
            else:
                counts["errors"] += 1
                errors[why] += 1

    try:
        if warmup > 0:
            end = perf() + warmup
            await asyncio.gather(*(worker(c, end) for c in conns))
        state["measuring"] = True
        srv0 = _cpu_snapshot(cpu_pids)
        cpu0, t0 = time.process_time(), perf()
        await asyncio.gather(*(worker(c, t0 + duration) for c in conns))
        t1 = perf()
        # Ran out of work early: the rate is over the time until the first worker found nothing left
        # (the others only finished their in-flight iteration after that).
        elapsed = (min(state["last"], t1) if state["exhausted"] and state["last"] else t1) - t0
        cpu = time.process_time() - cpu0
        srv = _cpu_pct(srv0, _cpu_snapshot(cpu_pids), t1 - t0)
    finally:
        for c in conns:
            c.close()
    out = {"engine": "python", "ok": counts["ok"], "errors": counts["errors"], "elapsed_s": round(elapsed, 3),
           "rps": round(counts["ok"] / elapsed, 1) if elapsed > 0 else 0.0, **percentiles(lat),
           "client_cpu_pct": round(100 * cpu / (t1 - t0), 1) if t1 > t0 else None}
    out.update(srv)
    if warmup > 0:
        out["warmup_errors"] = counts["warmup_errors"]
    if state["exhausted"]:
        out["exhausted"] = True
    if errors:
        out["error_sample"] = errors.most_common(1)[0][0]
    return out


def run_python(iteration, url: str, *, concurrency: int, duration: float, warmup: float, timeout: float = 10.0,
               cpu_pids: dict | None = None) -> dict:
    """Run ``iteration(conn)`` in ``concurrency`` workers (one keep-alive connection each)."""
    u = urllib.parse.urlsplit(url)
    return asyncio.run(_run_async(iteration, u.hostname, u.port or 80, concurrency, duration, warmup, timeout,
                                  cpu_pids))


def run_plan(plan: Plan, *, engine: str, concurrency: int, duration: float, warmup: float, wrk_threads: int = 1,
             timeout: float = 10.0, cpu_pids: dict | None = None) -> dict:
    if engine == "wrk":
        return run_wrk(plan, concurrency=concurrency, duration=duration, warmup=warmup, threads=wrk_threads,
                       timeout=timeout, cpu_pids=cpu_pids)
    return run_python(static_iteration(plan), plan.url, concurrency=concurrency, duration=duration, warmup=warmup,
                      timeout=timeout, cpu_pids=cpu_pids)
