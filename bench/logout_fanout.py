#!/usr/bin/env python3
"""Logout fan-out benchmark: one citizen signed in to N subsites logs out.

Prints, for N = 1 and N = 20 (or --subsites), over --rounds rounds:
  - the logout response time the citizen sees (must not grow with N: deliveries are queued,
    not attempted, during the request), and
  - the time from the logout request to the last subsite receiving its logout token.

Each subsite is a local HTTP receiver on 127.0.0.1. Run: .venv/bin/python bench/logout_fanout.py
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import threading
import time
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub import Hub  # noqa: E402
from util import machine_info, pkce_pair  # noqa: E402


class Receivers:
    """N back-channel logout endpoints; remembers when each sid reached each of them."""

    def __init__(self, n: int):
        self.arrivals: dict[str, list[float]] = {}
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                token = parse_qs(body).get("logout_token", [""])[0]
                import base64

                payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
                with lock:
                    outer.arrivals.setdefault(payload["sid"], []).append(time.perf_counter())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.servers = [ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(n)]
        for s in self.servers:
            s.daemon_threads = True
            threading.Thread(target=s.serve_forever, daemon=True).start()
        self.urls = [f"http://127.0.0.1:{s.server_address[1]}/bcl" for s in self.servers]

    def close(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()


def register(hub: Hub, receivers: Receivers) -> list[dict]:
    """Register the subsites in-process (the CLI would start a process per client)."""
    os.environ.update({k: v for k, v in hub.env.items() if k.startswith("IDP_")})
    from idp import create_app
    from idp.oauth.clients import create_client

    app = create_app()
    out = []
    with app.app_context():
        for i, url in enumerate(receivers.urls):
            redirect = f"http://127.0.0.1:1/cb{i}"
            c, secret = create_client(name=f"subsite {i}", redirect_uris=[redirect], first_party=True,
                                      backchannel_logout_uri=url)
            out.append({"client_id": c.client_id, "client_secret": secret, "redirect_uri": redirect})
    return out


def sign_in_everywhere(hub: Hub, clients: list[dict]) -> tuple[requests.Session, str]:
    """A fresh browser: log in, visit every subsite's /authorize; returns it and an ID token."""
    http = requests.Session()
    page = http.get(hub.issuer + "/login")
    fields = {m.group(1): unescape(m.group(2)) for m in re.finditer(r'name="([^"]+)"[^>]*value="([^"]*)"', page.text)}
    r = http.post(hub.issuer + "/login", data={**fields, "username": hub.username, "password": hub.password},
                  allow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    id_token = None
    for c in clients:
        verifier, challenge = pkce_pair()
        r = http.get(hub.issuer + "/authorize?" + urlencode({
            "response_type": "code", "client_id": c["client_id"], "redirect_uri": c["redirect_uri"], "scope": "openid",
            "code_challenge": challenge, "code_challenge_method": "S256"}), allow_redirects=False)
        code = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
        if id_token is None:
            id_token = requests.post(hub.issuer + "/token", data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": c["redirect_uri"],
                "code_verifier": verifier}, auth=(c["client_id"], c["client_secret"])).json()["id_token"]
    return http, id_token


def measure(hub: Hub, n: int, rounds: int) -> dict:
    receivers = Receivers(n)
    try:
        clients = register(hub, receivers)
        responses, last = [], []
        for _ in range(rounds):
            http, id_token = sign_in_everywhere(hub, clients)
            sid = json.loads(__import__("base64").urlsafe_b64decode(id_token.split(".")[1] + "=="))["sid"]
            t0 = time.perf_counter()
            r = http.get(hub.issuer + "/logout?" + urlencode({"id_token_hint": id_token}), allow_redirects=False)
            responses.append((time.perf_counter() - t0) * 1000)
            assert r.status_code in (200, 303), r.status_code
            deadline = time.perf_counter() + 60
            while len(receivers.arrivals.get(sid, [])) < n and time.perf_counter() < deadline:
                time.sleep(0.005)
            got = receivers.arrivals.get(sid, [])
            assert len(got) == n, f"only {len(got)} of {n} subsites were told"
            last.append((max(got) - t0) * 1000)
            http.close()
        return {"subsites": n, "rounds": rounds,
                "logout_response_ms_p50": round(statistics.median(responses), 1),
                "logout_response_ms_max": round(max(responses), 1),
                "last_delivery_ms_p50": round(statistics.median(last), 1),
                "last_delivery_ms_max": round(max(last), 1)}
    finally:
        receivers.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subsites", type=int, nargs="+", default=[1, 20])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    hub = Hub(database_url=None, workers=args.workers, threads=4, log=lambda *a: None)
    try:
        hub.setup()
        hub.start()
        results = [measure(hub, n, args.rounds) for n in args.subsites]
    finally:
        hub.cleanup()
    print(f"logout fan-out (SQLite, {args.workers} workers, median of {args.rounds} rounds)")
    print(f"{'subsites':>9} {'logout response p50 ms':>24} {'max':>8} {'last delivery p50 ms':>22} {'max':>8}")
    for r in results:
        print(f"{r['subsites']:>9} {r['logout_response_ms_p50']:>24} {r['logout_response_ms_max']:>8} "
              f"{r['last_delivery_ms_p50']:>22} {r['last_delivery_ms_max']:>8}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_info(), "results": results}, indent=2, default=str))


if __name__ == "__main__":
    main()
