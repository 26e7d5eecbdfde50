"""``idp serve`` with 2 workers: /metrics adds up every worker's counts (prometheus_client's
multiprocess mode), also those of workers that have died since; the per-start metrics directory is
removed at shutdown; JSON access lines carry the request id of the response and nothing personal."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.browser import HubBrowser
from tests.e2e.hub import LiveHub, start_hub

PHONE = "13904141234"
DISCOVERY = {"endpoint": "oauth.discovery", "method": "GET", "status": "2xx"}


def discovery_count(hub) -> float:
    text = requests.get(hub.url("/metrics"), timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "idp_http_request_duration_seconds_count" and s.labels == DISCOVERY:
                return s.value
    return 0.0


def workers(hub) -> set[int]:
    pid = hub.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(c) for c in children}


@pytest.fixture
def hub(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    user_cmd, user = LiveHub.user_args(username="ops-" + os.urandom(3).hex(), phone=PHONE)
    client_cmd, client = LiveHub.client_args(first_party=True)
    hub, (u, c) = start_hub(tmp_path, provision=[user_cmd, client_cmd],
                            env={"TMPDIR": str(tmp), "IDP_LOG_FORMAT": "json", "IDP_ACCESS_LOG": "1"})
    hub.tmp, hub.user, hub.rp = tmp, {**user, **u}, {**client, **c}
    try:
        yield hub
    finally:
        hub.stop()


def test_metrics_add_up_across_workers_and_survive_them(hub):
    assert discovery_count(hub) == 0
    for _ in range(30):  # a new connection each: both workers take some
        requests.get(hub.url("/.well-known/openid-configuration"), timeout=10, headers={"Connection": "close"})
    original = workers(hub)
    assert len(original) == 2
    [metrics_dir] = list(hub.tmp.glob("idp-metrics-*"))
    writers = {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("histogram_*.db")}
    assert writers == {str(pid) for pid in original}, "both workers served and counted"
    # Every worker answers with the sum of all of them.
    assert {discovery_count(hub) for _ in range(8)} == {30}

    for pid in original:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not (len(workers(hub)) == 2 and not workers(hub) & original):
        assert time.monotonic() < deadline, "Granian did not replace the killed workers"
        time.sleep(0.2)
    hub.wait_ready()
    assert discovery_count(hub) == 30  # counts of dead workers stay in the sums

    hub.stop()
    assert not metrics_dir.exists()


def test_json_access_lines_carry_the_request_id_and_nothing_personal(hub):
    rp, user = hub.rp, hub.user
    with HubBrowser(PHONE, user["password"]) as browser:
        from urllib.parse import parse_qs, urlencode, urlsplit

        from tests.conftest import pkce_pair

        verifier, challenge = pkce_pair()
        url = hub.url("/authorize?" + urlencode({
            "response_type": "code", "client_id": rp["client_id"], "redirect_uri": rp["redirect_uri"],
            "scope": "openid phone", "state": "s1", "login_hint": PHONE,
            "code_challenge": challenge, "code_challenge_method": "S256"}))
        code = parse_qs(urlsplit(browser.authorize(url, rp["redirect_uri"])).query)["code"][0]
    token = requests.post(hub.url("/token"), auth=(rp["client_id"], rp["client_secret"]), timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": rp["redirect_uri"],
        "code_verifier": verifier})
    assert token.status_code == 200, token.text
    t = token.json()
    time.sleep(0.5)
    log = hub.server_log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "idp.access"]
    assert any(line["request_id"] == token.headers["X-Request-Id"] and line["path"] == "/token"
               and line["status"] == 200 for line in access)
    assert any(line["path"].startswith("/authorize?[query omitted]") for line in access)
    for secret in (PHONE, user["password"], code, verifier, t["access_token"], t["refresh_token"],
                   t["id_token"], rp["client_secret"], "login_hint"):
        assert secret not in log, f"{secret[:12]}… logged"
