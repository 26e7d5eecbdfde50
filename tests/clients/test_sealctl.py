"""``sealctl`` (clients/sealctl) against a live hub (``idp serve``): certificate login with the JWT
bearer grant (RFC 7523 §2.1, ``x5c`` per RFC 7515 §4.1.6), a DPoP-bound token (RFC 9449), ``whoami``
with DPoP proofs; the hub provisioned with its own CLI like an operator would."""
from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys

import pytest
import requests

from tests.e2e.hub import ROOT, shared_hub

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("live-sqlite")]

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
P12_PASSWORD = "p12-" + secrets.token_hex(6)


@pytest.fixture(scope="module")
def hub(request):
    return shared_hub(request, "sqlite")


OFFICIALS = ("contract", "whoami", "revoked", "errors")


@pytest.fixture(scope="module")
def officials(hub, tmp_path_factory) -> dict:
    """Officials of department ``sealtest``, each with a PKCS#12 file: {role: (path, serial, username)}.
    Made up front, each step's ``idp`` commands in parallel (process start-up dominates each)."""
    from tests.seals.live_support import idp_at_once, ok_json

    work = tmp_path_factory.mktemp("sealctl-officials")
    names = {role: f"{role}-{secrets.token_hex(3)}" for role in OFFICIALS}
    users = [hub.user_args(name, name="王五")[0] for name in names.values()]
    for r in idp_at_once(hub, *users, ("departments", "create", "--code", "sealtest", "--name", "本溪市测试局")):
        ok_json(r)
    for r in idp_at_once(hub, *(("officials", "add", "--username", n, "--department", "sealtest")
                                for n in names.values())):
        ok_json(r)
    issued = idp_at_once(hub, *(("pki", "issue", "--username", n, "--out", str(work / f"{n}.p12"),
                                 "--password", P12_PASSWORD) for n in names.values()))
    return {role: (work / f"{n}.p12", ok_json(r)["serial"], n) for (role, n), r in zip(names.items(), issued)}


@pytest.fixture(scope="module")
def tool(hub):
    c = hub.cli("clients", "create", "--name", "sealctl", "--auth-method", "none", "--grant-type", GRANT)
    return c["client_id"]


def sealctl(state, tool, *args, password=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEALCTL_", "IDP_"))}
    env.update(SEALCTL_STATE=str(state))
    if tool:
        env["SEALCTL_CLIENT_ID"] = tool
    if password:
        env["SEALCTL_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "clients.sealctl", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_login_as_in_the_contract_uses_the_well_known_client(hub, officials, tmp_path):
    """``sealctl login --hub URL --p12 FILE --password P`` (issue 6's contract, no client id): ``idp init``
    registered the tool's public client ``sealctl``."""
    p12, _, _ = officials["contract"]
    r = sealctl(tmp_path / "state", None, "login", "--hub", hub.issuer, "--p12", p12, "--password", P12_PASSWORD)
    assert r.returncode == 0, r.stderr
    r = sealctl(tmp_path / "state", None, "whoami", password=P12_PASSWORD)
    assert r.returncode == 0 and json.loads(r.stdout)["acr"] == "urn:idp:loa:3", r.stderr


def test_login_and_whoami(hub, tool, officials, tmp_path):
    """End to end: discovery, RFC 7523 §2.1 grant with a DPoP proof (RFC 9449 §5), then GET
    /api/official with ``Authorization: DPoP`` and a proof with ``ath`` (§7.1); state files 0600 and
    no private key in them; the stored token alone (a thief's copy) is refused (§7.1)."""
    p12, _, username = officials["whoami"]
    state = tmp_path / "state"
    r = sealctl(state, tool, "login", "--hub", hub.issuer, "--p12", p12, "--password", P12_PASSWORD)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["hub"] == hub.issuer
    for f in state.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        assert "PRIVATE" not in f.read_text() and '"d"' not in f.read_text()
    r = sealctl(state, tool, "whoami", password=P12_PASSWORD)
    assert r.returncode == 0, r.stderr
    me = json.loads(r.stdout)
    assert me["username"] == username and me["official"][0]["department"] == "sealtest"
    assert me["acr"] == "urn:idp:loa:3" and me["amr"] == ["swk"]

    stolen = json.loads((state / "token.json").read_text())["access_token"]
    url = hub.url("/api/official")
    assert requests.get(url, headers={"Authorization": f"Bearer {stolen}"}, timeout=10).status_code == 401
    assert requests.get(url, headers={"Authorization": f"DPoP {stolen}"}, timeout=10).status_code == 401


def test_revoked_certificate_cannot_log_in(hub, tool, officials, tmp_path):
    """RFC 5280 §6.3 via the hub's records: a revoked certificate's login is refused with the reason."""
    p12, serial, _ = officials["revoked"]
    hub.cli("pki", "revoke", serial, "--reason", "keyCompromise")
    r = sealctl(tmp_path / "state", tool, "--lang", "en", "login", "--hub", hub.issuer, "--p12", p12,
                "--password", P12_PASSWORD)
    assert r.returncode == 1 and "revoked" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = sealctl(tmp_path / "state", tool, "login", "--hub", hub.issuer, "--p12", p12, "--password", P12_PASSWORD)
    # zh by default: the tool's sentence for the code, then the hub's own detail (the token endpoint's
    # ASCII description, RFC 6749 §5.2) and the code
    assert r.returncode == 1 and "吊销" in r.stderr and "revoked" in r.stderr, r.stderr
    assert r.stderr.rstrip().endswith("；invalid_grant）"), r.stderr


def test_clear_errors(hub, tool, officials, tmp_path):
    """Wrong password, unreachable hub, not signed in: one line on stderr, non-zero exit, no traceback
    (in English, asked for with --lang en)."""
    junk = tmp_path / "none.p12"
    junk.write_bytes(b"not a pkcs12 file")
    good, _, _ = officials["errors"]
    cases = [
        (("login", "--hub", hub.issuer, "--p12", junk, "--password", "x"), "wrong password or not a PKCS#12"),
        (("login", "--hub", hub.issuer, "--p12", good, "--password", "wrong"), "wrong password"),
        (("login", "--hub", "http://127.0.0.1:9", "--p12", good, "--password", P12_PASSWORD), "cannot reach"),
        (("whoami", "--password", "x"), "not signed in"),
    ]
    for args, message in cases:
        r = sealctl(tmp_path / "empty-state", tool, "--lang", "en", *args)
        assert r.returncode != 0 and r.stderr.startswith("sealctl: ") and message in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
