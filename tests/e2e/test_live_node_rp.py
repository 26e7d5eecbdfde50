"""The live hub against an independent relying party: npm ``openid-client`` 6 (tests/e2e/node/rp.mjs).

The Node.js RP does discovery, builds the authorization URL (PKCE S256, state, nonce), and after
the callback checks state, iss (RFC 9207), the ID token (signature against the JWKS, iss, aud, exp,
iat, nonce, at_hash) with the library's own rules, then calls userinfo, refreshes, replays the old
refresh token, introspects and revokes. Python does the browser part in between.
"""
from __future__ import annotations

import json
import selectors
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.browser import HubBrowser
from tests.e2e.hub import stop_process
from tests.services.postgres import in_ci

pytestmark = pytest.mark.live

NODE_DIR = Path(__file__).resolve().parent / "node"
TIMEOUT = 60


def node_or_skip() -> str:
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed (Node.js 20+)"
    elif not (NODE_DIR / "node_modules" / "openid-client").is_dir():
        missing = f"{NODE_DIR}/node_modules is missing: run 'npm ci' in {NODE_DIR} (make node)"
    if missing:
        if in_ci():
            pytest.fail(missing + " -- required under CI=true", pytrace=False)
        pytest.skip(missing)
    return node


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    """One line of the RP's stdout, or a failure with its stderr if none comes in time."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            stop_process(proc)
            pytest.fail(f"rp.mjs printed nothing within {timeout} s")
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        err = proc.stderr.read()
        pytest.fail(f"rp.mjs exited {proc.returncode} without output; stderr:\n{err}")
    return line


def run_node_rp(hub, rp: dict, browser: HubBrowser, *extra: str) -> tuple[int, dict, str, str]:
    """Start rp.mjs, do the browser part for its authorization URL, return (exit code, final JSON,
    stderr, the callback URL)."""
    node = node_or_skip()
    # "--opt=value": node's parseArgs refuses "--opt VALUE" when VALUE begins with "-", and
    # generated client ids and secrets do one time in 64.
    argv = [node, "rp.mjs", f"--issuer={hub.issuer}", f"--client-id={rp['client_id']}",
            f"--client-secret={rp['client_secret']}", f"--redirect-uri={rp['redirect_uri']}",
            f"--timeout={TIMEOUT}", *extra]
    proc = subprocess.Popen(argv, cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(read_line(proc, TIMEOUT))
        callback = browser.authorize(first["authorization_url"], rp["redirect_uri"])
        out, err = proc.communicate(callback + "\n", timeout=TIMEOUT)
    finally:
        stop_process(proc)
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, f"rp.mjs exited {proc.returncode} with no final JSON; stderr:\n{err}"
    return proc.returncode, json.loads(lines[-1]), err, callback


def test_openid_client_full_flow(live_hub, browser):
    """An independent certified-library RP: OIDC Core 1.0 §3.1 (code flow; §3.1.3.7 ID token
    validation; §5.3.2 userinfo sub equals ID token sub), RFC 7636 (PKCE S256), RFC 9207 (iss),
    RFC 6749 §6 + RFC 9700 §4.14.2 (refresh rotation, reuse refused with invalid_grant),
    RFC 7662 §2.2 (introspection), RFC 7009 §2 (revocation). ``prompt=consent`` because the RP asks
    for ``offline_access`` (OIDC Core 1.0 §11)."""
    rc, result, err, callback = run_node_rp(live_hub, live_hub.rp, browser, "--prompt=consent")
    assert rc == 0 and result["errors"] == [], f"rp.mjs exited {rc}: {err}\n{json.dumps(result, indent=1)}"
    assert "consent" in browser.pages  # prompt=consent always asks (OIDC Core §3.1.2.1)
    claims, userinfo = result["id_token_claims"], result["userinfo"]
    assert claims["iss"] == live_hub.issuer and claims["aud"] in (live_hub.rp["client_id"], [live_hub.rp["client_id"]])
    assert claims["sub"] == userinfo["sub"] == live_hub.user["sub"]
    assert result["skipped"] == []
    assert result["refreshed"] is True
    assert result["rotated"] is True
    assert result["reuse_accepted"] is False
    assert result["reuse_error"] == "invalid_grant"
    assert result["introspection_before_reuse_active"] is True
    assert result["revoked_token_type"] == "refresh_token"
    assert result["introspection_after_revoke_active"] is False


def test_openid_client_pushes_its_authorization_request(live_hub, browser):
    """RFC 9126 with an independent library: openid-client pushes the request to the endpoint discovery
    names (§5), authenticating as at the token endpoint (§2), and sends the browser to /authorize with
    only ``client_id`` and ``request_uri`` (§4); the rest of the flow is the same."""
    rc, result, err, callback = run_node_rp(live_hub, live_hub.rp, browser, "--par")
    assert rc == 0 and result["errors"] == [], f"rp.mjs exited {rc}: {err}\n{json.dumps(result, indent=1)}"
    first = browser.trail[0].split()[1]  # "GET <the authorization URL> -> ..."
    assert set(parse_qs(urlsplit(first).query)) == {"client_id", "request_uri"}, browser.trail
    assert result["id_token_claims"]["sub"] == live_hub.user["sub"] and result["refreshed"] is True
