"""Peers to compare against in the same run (``--peers DIR``, e.g. /work/shared/peers): each is
started with its own ``start.sh PORT`` (which prints its PID) and stopped with ``kill PID``.

Known layouts (see DIR/README.md):

* ``node-oidc-provider/``: npm oidc-provider, in-memory storage, port 3100-3199, issuer
  http://127.0.0.1:PORT, client bench-client / bench-secret, user alice / wonderland, redirect URI
  http://127.0.0.1:3199/cb. Started twice: with WORKERS = our worker count for the stateless
  scenarios (discovery, jwks, client_credentials), and as one process for introspect, userinfo and
  sso_round_trip (its memory store is per process, so a token, a code or a session made by one worker
  is unknown to another). No code_exchange: its memory store is an LRU of 1000 entries, which evicts a
  batch of pre-minted codes before they are exchanged.
* ``django-oauth-toolkit/``: gunicorn sync workers (WORKERS = ours), SQLite, issuer
  http://127.0.0.1:PORT/o; ``bench-client-plain`` (plain-text secret, like our keyed hash; the
  PBKDF2-hashed ``bench-client`` does ~5 requests/s) for client_credentials and introspection,
  ``bench-web`` for the login that yields the user token and for the code scenarios (its secret is
  PBKDF2-hashed, DOT's default: the seed has no plain-text code client).

The code scenarios (``flows.py``) reuse the browser session the scripted login leaves (its cookies, as
a browser would send them to the authorization endpoint) with the login's client: oidc-provider
answers 303 with a code (the bench server's ``loadExistingGrant`` skips consent), DOT 302
(``skip_authorization`` on the seeded applications).
"""
from __future__ import annotations

import http.cookiejar
import os
import signal
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from flows import CodeFlow, cookie_header
from hub import free_port
from loadgen import ACTIVE, Plan
from oidc_login import LoginError, basic_auth, get_user_tokens
from util import http_json

STATELESS = ("discovery", "jwks", "client_credentials")
FLOWS = ("code_exchange", "sso_round_trip")  # the signed-in session's authorization code scenarios
PEER_SCENARIOS = ("discovery", "jwks", "client_credentials", "introspect", "userinfo") + FLOWS
REDIRECT_URI = "http://127.0.0.1:3199/cb"  # registered for bench-client (node) and bench-web (DOT)
# Seen in a run: of 3,596 codes minted in 6 s, 2,050 answered invalid_grant at the exchange. The minted
# batch would also evict the user's access token that userinfo and introspect use after it.
NODE_NO_CODE_BATCH = ("oidc-provider's memory adapter is an LRU of 1000 entries (lib/adapters/memory_adapter.js): "
                      "a batch of pre-minted codes is evicted before it is exchanged (invalid_grant); "
                      "sso_round_trip includes the exchange")


@dataclass
class Instance:
    folder: str
    port: int
    workers: int
    pid: int | None = None
    issuer: str = ""
    disco: dict = field(default_factory=dict)


@dataclass
class Peer:
    name: str
    label: str
    instances: dict = field(default_factory=dict)  # scenario -> Instance
    plans: dict = field(default_factory=dict)  # scenario -> (Plan, Instance)
    skipped: dict = field(default_factory=dict)  # scenario -> reason
    notes: dict = field(default_factory=dict)  # scenario -> short note


STARTED: list[Instance] = []  # every instance we started, stopped by stop_peers()


def _start(script: Path, inst: Instance, env_extra: dict, log) -> None:
    env = {**os.environ, **env_extra}
    t0 = time.perf_counter()
    p = subprocess.run(["bash", str(script), str(inst.port)], env=env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"{script} {inst.port} failed: {p.stderr[-1500:]}")
    inst.pid = int(p.stdout.strip().splitlines()[-1])
    STARTED.append(inst)
    log(f"  started {script.parent.name} on :{inst.port} (pid {inst.pid}, {env_extra}) in "
        f"{time.perf_counter() - t0:.1f} s")


def _stop(inst: Instance) -> None:
    if not inst.pid:
        return
    try:
        os.kill(inst.pid, signal.SIGTERM)
    except ProcessLookupError:
        inst.pid = None
        return
    for _ in range(100):
        try:
            os.kill(inst.pid, 0)
        except ProcessLookupError:
            break
        # reap if it happens to be our child (start.sh backgrounds it, so usually not)
        time.sleep(0.05)
    else:
        try:
            os.kill(inst.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    inst.pid = None


def _discover(inst: Instance) -> None:
    status, disco = http_json(inst.issuer + "/.well-known/openid-configuration")
    if status != 200 or not isinstance(disco, dict):
        raise RuntimeError(f"discovery at {inst.issuer} failed: HTTP {status}")
    inst.disco = disco


def _form_headers(client_id: str, secret: str) -> dict:
    return {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
            "Authorization": basic_auth(client_id, secret)}


def _precheck(plan: Plan) -> str | None:
    """None if one request of the plan is judged ok, else the reason."""
    from loadgen import judge_ok

    status, body = http_json(plan.url, plan.body or None, plan.headers, method=plan.method, raw=True)
    if status != 200 or not judge_ok(plan.expect, body):
        return f"pre-check failed: HTTP {status} {body[:200]!r}"
    return None


def _common_plans(peer: Peer, stateless: Instance, stateful: Instance, *, cc_client, introspect_client,
                  login_client, introspection_endpoint=None, flows=FLOWS) -> None:
    d = stateless.disco
    plans = {
        "discovery": (Plan("GET", stateless.issuer + "/.well-known/openid-configuration",
                           {"Accept": "application/json"}), stateless),
        "jwks": (Plan("GET", d["jwks_uri"], {"Accept": "application/json"}), stateless),
        "client_credentials": (Plan("POST", d["token_endpoint"], _form_headers(*cc_client),
                                    b"grant_type=client_credentials", b'"access_token"'), stateless),
    }
    ds = stateful.disco
    try:
        jar = http.cookiejar.CookieJar()  # the browser session the login leaves, for the code scenarios
        tok = get_user_tokens(ds, login_client[0], login_client[1], "alice", "wonderland",
                              REDIRECT_URI, scope="openid profile email", jar=jar)
        at = tok["access_token"]
        ep = introspection_endpoint or ds.get("introspection_endpoint")
        body = urllib.parse.urlencode({"token": at, "token_type_hint": "access_token"}).encode()
        plans["introspect"] = (Plan("POST", ep, _form_headers(*introspect_client), body, ACTIVE), stateful)
        plans["userinfo"] = (Plan("GET", ds["userinfo_endpoint"], {"Authorization": f"Bearer {at}",
                                                                  "Accept": "application/json"}, b"", b'"sub"'),
                             stateful)
        # The same client as the login: its grant (node) / skip_authorization (DOT) means the signed-in
        # session gets a code straight away, as our first-party clients do.
        flow = CodeFlow(ds["authorization_endpoint"], ds["token_endpoint"], login_client[0], basic_auth(*login_client),
                        REDIRECT_URI, cookie_header(jar, ds["authorization_endpoint"]))
        for s in flows:
            plans[s] = (flow, stateful)
    except (LoginError, KeyError, OSError) as e:
        for s in ("introspect", "userinfo") + FLOWS:
            peer.skipped[s] = f"scripted login failed: {e}"[:300]
    for scenario, (plan, inst) in plans.items():
        why = plan.precheck() if isinstance(plan, CodeFlow) else _precheck(plan)
        if why:
            peer.skipped[scenario] = why
        else:
            peer.plans[scenario] = (plan, inst)


def start_peers(peers_dir: str, workers: int, log=print) -> list[Peer]:
    root = Path(peers_dir).resolve()
    peers: list[Peer] = []
    node_dir, dot_dir = root / "node-oidc-provider", root / "django-oauth-toolkit"
    if (node_dir / "start.sh").exists():
        alg = os.environ.get("BENCH_NODE_ALG", "ES256")
        peer = Peer("node", f"node oidc-provider ({alg})")
        peers.append(peer)
        try:
            p1 = free_port(3100, 3198)
            multi = Instance("node-oidc-provider", p1, workers)
            _start(node_dir / "start.sh", multi, {"ALG": alg, "WORKERS": str(workers)}, log)
            p2 = free_port(p1 + 1, 3198)
            single = Instance("node-oidc-provider", p2, 1)
            _start(node_dir / "start.sh", single, {"ALG": alg, "WORKERS": "1"}, log)
            for inst in (multi, single):
                inst.issuer = f"http://127.0.0.1:{inst.port}"
                _discover(inst)
            _common_plans(peer, multi, single, cc_client=("bench-client", "bench-secret"),
                          introspect_client=("bench-client", "bench-secret"),
                          login_client=("bench-client", "bench-secret"), flows=("sso_round_trip",))
            peer.skipped["code_exchange"] = NODE_NO_CODE_BATCH
            for s in STATELESS:
                peer.notes[s] = f"{workers} workers"
            for s in ("introspect", "userinfo", "sso_round_trip"):
                peer.notes[s] = "1 process"
        except Exception as e:  # a peer that does not start is reported, not fatal
            peer.skipped = {s: f"peer not available: {e}"[:300] for s in PEER_SCENARIOS}
            peer.plans = {}
    if (dot_dir / "start.sh").exists():
        peer = Peer("dot", "django-oauth-toolkit")
        peers.append(peer)
        try:
            inst = Instance("django-oauth-toolkit", free_port(3110, 3199), workers)
            _start(dot_dir / "start.sh", inst, {"WORKERS": str(workers)}, log)
            inst.issuer = f"http://127.0.0.1:{inst.port}/o"
            _discover(inst)
            _common_plans(peer, inst, inst, cc_client=("bench-client-plain", "bench-secret"),
                          introspect_client=("bench-client-plain", "bench-secret"),
                          login_client=("bench-web", "bench-secret"),
                          introspection_endpoint=inst.issuer + "/introspect/")
            for s in PEER_SCENARIOS:
                peer.notes[s] = f"{workers} sync workers"
            for s in FLOWS:  # bench-web, the seed's only code client, has DOT's default PBKDF2-hashed secret
                peer.notes[s] = f"{workers} sync w., PBKDF2 secret"
        except Exception as e:
            peer.skipped = {s: f"peer not available: {e}"[:300] for s in PEER_SCENARIOS}
            peer.plans = {}
    if not peers:
        log(f"  no known peer folder (node-oidc-provider/, django-oauth-toolkit/) in {root}")
    return peers


def start_hello(workers: int, threads: int, log=print) -> Peer:
    """``bench/hello_app.py`` (bare Flask) under Granian with ``idp serve``'s settings: the ceiling that
    discovery and JWKS, answered before Flask, are compared with (GET /hello.json, a small JSON body)."""
    import sys

    peer = Peer("hello", "Flask hello (Granian, same settings)")
    port = free_port(3150, 3198)
    inst = Instance("hello", port, workers)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", str(workers),
             "--blocking-threads", str(threads), "--host", "127.0.0.1", "--port", str(port),
             "--no-access-log", "--log-level", "warning", "hello_app:app"],
            cwd=Path(__file__).resolve().parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        inst.pid = proc.pid
        STARTED.append(inst)
        url = f"http://127.0.0.1:{port}/hello.json"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if http_json(url)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("did not answer within 20 s")
        log(f"  started hello_app under Granian on :{port} (pid {proc.pid}, {workers} workers x {threads} threads)")
        for s in ("discovery", "jwks"):
            peer.plans[s] = (Plan("GET", url, {"Accept": "application/json"}, b"", b'"hello"'), inst)
            peer.notes[s] = f"{workers} workers"
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        peer.skipped = {s: f"hello not available: {e}"[:300] for s in ("discovery", "jwks")}
        peer.plans = {}
    return peer


def stop_peers() -> None:
    while STARTED:
        _stop(STARTED.pop())
