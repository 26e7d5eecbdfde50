"""``sealctl`` against a live hub with ``IDP_DPOP_NONCE=on`` (RFC 9449 §8 at the token endpoint, §9 at
resources): the tool retries once with the nonce from ``DPoP-Nonce`` and keeps the last one for its
next request, in the state directory for its next run; the real console script signs in, lists its
seals and signs a file (the upload path)."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from clients.sealctl import hub as hubapi
from clients.sealctl.keys import Pkcs12Key
from tests.seals.live_support import P12_PASSWORD, start_sealing_hub

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("live-nonce")]

SEALCTL = Path(sys.executable).parent / "sealctl"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    work = tmp_path_factory.mktemp("sealctl-nonce")
    sealing = start_sealing_hub(work, env={"IDP_DPOP_NONCE": "on"})
    try:
        yield sealing
    finally:
        sealing.hub.stop()


def sealctl(live, state, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEALCTL_", "IDP_"))}
    return subprocess.run([str(SEALCTL), "--lang", "en", *map(str, args), "--state", state,
                           "--password", P12_PASSWORD], env=env, cwd=live.work, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


class Recorder:
    """Every request ``requests`` sends from this process, with its DPoP proof's ``nonce`` and the status."""

    def __init__(self, monkeypatch):
        self.seen: list[tuple[str, str | None, int]] = []
        real = requests.Session.send

        def send(session, prepared, **kw):
            resp = real(session, prepared, **kw)
            nonce = None
            if prepared.headers.get("DPoP"):
                payload = prepared.headers["DPoP"].split(".")[1]
                nonce = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("nonce")
            self.seen.append((prepared.path_url.split("?")[0], nonce, resp.status_code))
            return resp

        monkeypatch.setattr(requests.Session, "send", send)


def test_the_hub_asks_for_a_nonce(live):
    """RFC 9449 §8: without a nonce the token endpoint answers 400 ``use_dpop_nonce`` and ``DPoP-Nonce``."""
    key = Pkcs12Key(live.p12, P12_PASSWORD)
    endpoint = live.hub.url("/token")
    r = requests.post(endpoint, headers={"DPoP": hubapi.dpop_proof(key, "POST", endpoint)},
                      data={"grant_type": hubapi.GRANT_TYPE,
                            "assertion": hubapi.assertion(key, "sealctl", endpoint)}, timeout=15)
    assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce" and r.headers["DPoP-Nonce"]


def test_the_tool_retries_once_and_remembers_the_nonce(live, monkeypatch):
    """``hub.login`` and ``hub.call``: the first proof without a nonce is answered ``use_dpop_nonce``
    (§8), the retry carries the nonce and succeeds; the next request (a resource, §9) already carries
    the remembered nonce and needs no retry."""
    monkeypatch.setattr(hubapi, "_nonces", hubapi.Nonces())
    seen = Recorder(monkeypatch).seen
    key = Pkcs12Key(live.p12, P12_PASSWORD)
    state = hubapi.login(live.hub.issuer, key, "sealctl")
    me = hubapi.call(state, key, "GET", "/api/official")
    assert me["acr"] == "urn:idp:loa:3"
    proofs = [(p, n is not None, s) for p, n, s in seen if p != "/.well-known/openid-configuration"]
    assert proofs == [("/token", False, 400), ("/token", True, 200), ("/api/official", True, 200)], seen
    assert hubapi._nonces.get(live.hub.issuer)  # the last answer's, for the next request


def test_a_forgotten_nonce_is_asked_for_at_a_resource(live, monkeypatch):
    """§9: a resource answers 401 with ``WWW-Authenticate: DPoP error="use_dpop_nonce"``; the tool
    retries with the nonce from ``DPoP-Nonce`` and gets the answer."""
    monkeypatch.setattr(hubapi, "_nonces", hubapi.Nonces())
    key = Pkcs12Key(live.p12, P12_PASSWORD)
    state = hubapi.login(live.hub.issuer, key, "sealctl")
    hubapi._nonces.clear()
    seen = Recorder(monkeypatch).seen
    assert hubapi.call(state, key, "GET", "/api/seals")["seals"]
    assert [(p, n is not None, s) for p, n, s in seen] == [("/api/seals", False, 401), ("/api/seals", True, 200)]


def test_the_next_run_starts_with_the_stored_nonce(live, tmp_path, monkeypatch):
    """§8, §9: the last nonce is kept per hub in the state directory (``dpop-nonce.json``, owner-only
    like the token), so a new run — the CLI's ``main`` again, nothing kept in memory — sends it in its
    first proof and is not answered ``use_dpop_nonce``; a corrupt file only means one retry."""
    import stat

    from clients.sealctl.cli import main

    monkeypatch.setenv("SEALCTL_PASSWORD", P12_PASSWORD)
    monkeypatch.setattr(hubapi, "_nonces", hubapi.Nonces())
    state = tmp_path / "state"
    seen = Recorder(monkeypatch).seen

    def run(*args):
        seen.clear()
        assert main(["--lang", "en", "--state", str(state), *map(str, args)]) == 0
        return [(p, n, s) for p, n, s in seen if p != "/.well-known/openid-configuration"]

    first = run("login", "--hub", live.hub.issuer, "--p12", live.p12)
    assert [(p, n is not None, s) for p, n, s in first] == [("/token", False, 400), ("/token", True, 200)]
    stored = state / "dpop-nonce.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert not hubapi._nonces.get(live.hub.issuer)  # kept in the file, not in this process's memory

    for command, path in (("whoami", "/api/official"), ("seals", "/api/seals")):
        nonce = json.loads(stored.read_text())[live.hub.issuer]
        assert nonce
        assert run(command) == [(path, nonce, 200)]  # no use_dpop_nonce answer, no retry

    stored.write_text("{not json")
    again = run("whoami")
    assert [(p, n is not None, s) for p, n, s in again] == [("/api/official", False, 401), ("/api/official", True, 200)]
    assert json.loads(stored.read_text())[live.hub.issuer]  # written again


def test_the_console_script_works_with_nonces(live, tmp_path):
    """The real ``sealctl``: ``login``, ``whoami``, ``seals`` and ``sign`` (an upload, ``call_raw``)
    against a hub that requires nonces, each process starting without one."""
    state = tmp_path / "state"
    r = sealctl(live, state, "login", "--hub", live.hub.issuer, "--p12", live.p12)
    assert r.returncode == 0, r.stderr
    for args in (("whoami",), ("seals",)):
        r = sealctl(live, state, *args)
        assert r.returncode == 0, (args, r.stderr)
    (tmp_path / "file.bin").write_bytes(b"nonce " * 1000)
    r = sealctl(live, state, "sign", "--seal", live.seal, "--in", tmp_path / "file.bin",
                "--out", tmp_path / "file.bin.p7s")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "file.bin.p7s").read_bytes()[:1] == b"\x30"  # DER SEQUENCE
