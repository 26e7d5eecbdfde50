"""Back-channel logout against a live hub: delivery survives a SIGKILL of the hub mid fan-out
(OIDC Back-Channel Logout 1.0 §2.5; our reliability contract: stored before attempted, leased,
retried, never re-sent to a subsite that already answered 2xx)."""
from __future__ import annotations

import os
import signal
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import pkce_pair
from tests.e2e.browser import HubBrowser
from tests.e2e.hub import LiveHub, free_port
from tests.sessions.receiver import Receiver

pytestmark = pytest.mark.live


def _kill_tree(pid: int) -> None:
    """SIGKILL the Granian main process and its workers: nothing gets to clean up."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        children.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    for p in [pid, *children]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait(what, predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_fan_out_survives_sigkill_and_sends_nothing_twice(tmp_path):
    with Receiver() as fast1, Receiver() as fast2, Receiver(delays=[30]) as slow:
        hub = LiveHub(tmp_path, f"sqlite:///{tmp_path / 'idp.sqlite3'}", "sqlite")
        # The kill must come while the slow delivery's lease holds (after it, the other worker rightly
        # claims it again): 10 s leaves room for the `idp logout deliveries` calls on a loaded machine
        # (with 3 s, one slow CLI call saw all three delivered, the slow one by the second worker).
        hub.env.update({"IDP_LOGOUT_LEASE": "10", "IDP_LOGOUT_TIMEOUT": "40"})
        hub.cli("init")
        user = hub.create_user()
        clients = []
        for r in (fast1, fast2, slow):
            redirect = f"http://127.0.0.1:{free_port()}/callback"
            clients.append({**hub.cli("clients", "create", "--name", "子站", "--first-party", "--redirect-uri", redirect,
                                      "--backchannel-logout-uri", r.url), "redirect_uri": redirect})
        hub.start()
        try:
            with HubBrowser(user["username"], user["password"]) as browser:
                id_token = None
                for c in clients:
                    verifier, challenge = pkce_pair()
                    url = hub.url("/authorize?" + urlencode({
                        "response_type": "code", "client_id": c["client_id"], "redirect_uri": c["redirect_uri"],
                        "scope": "openid", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"}))
                    code = parse_qs(urlsplit(browser.authorize(url, c["redirect_uri"])).query)["code"][0]
                    tok = requests.post(hub.url("/token"), data={
                        "grant_type": "authorization_code", "code": code, "redirect_uri": c["redirect_uri"],
                        "code_verifier": verifier}, auth=(c["client_id"], c["client_secret"]), timeout=10).json()
                    id_token = id_token or tok["id_token"]
                started = time.monotonic()
                resp = browser.http.get(hub.url("/logout?" + urlencode({"id_token_hint": id_token})), timeout=10)
                assert resp.status_code == 200 and time.monotonic() - started < 5  # the citizen never waits
            _wait("the fast subsites and the slow one's first attempt",
                  lambda: len(fast1.received) == 1 and len(fast2.received) == 1 and len(slow.received) == 1)
            # The fast answers were recorded; the slow one is mid-delivery. Kill the hub now.
            _wait("the fast deliveries recorded", lambda: sum(
                d["status"] == "delivered" for d in hub.cli("logout", "deliveries")) == 2)
            _kill_tree(hub.proc.pid)
            hub.proc.wait(timeout=10)
            hub.stop()
            pending = [d for d in hub.cli("logout", "deliveries") if d["status"] == "pending"]
            assert len(pending) == 1 and pending[0]["client_id"] == clients[2]["client_id"]
            hub.start()  # a fresh process; the dead worker's lease expires and the delivery resumes
            _wait("redelivery after restart", lambda: all(
                d["status"] == "delivered" for d in hub.cli("logout", "deliveries")), timeout=30)
            keys = KeySet.import_key_set(requests.get(hub.url("/jwks.json"), timeout=5).json())
            first, again = (jwt.decode(t, keys).claims for t in slow.received)
            assert first["jti"] == again["jti"]  # the same logout, so the subsite's replay check sees one
        finally:
            hub.stop()
        assert len(fast1.received) == 1 and len(fast2.received) == 1  # nothing twice after a 2xx
        assert len(slow.received) == 2
