"""``make run``: set up the hub (database, keys, demo data) and start it with two demo subsites.

Everything listens on 127.0.0.1. Demo data is created once and remembered in
``instance/demo.json`` (client secrets are shown only at creation, so we keep them there).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"
STATE = INSTANCE / "demo.json"
HUB_PORT = int(os.environ.get("DEMO_HUB_PORT", "5000"))
ISSUER = f"http://127.0.0.1:{HUB_PORT}"
SUBSITES = [
    ("scjgj", "本溪市市场监督管理局", 5001),
    ("rsj", "本溪市人力资源和社会保障局", 5002),
]
# What each subsite asks for: the market regulator serves businesses, so it asks whom one acts for.
SUBSITE_SCOPES = {"scjgj": "openid profile email phone org", "rsj": "openid profile email"}
DEPARTMENTS = [("SCJGJ", "本溪市市场监督管理局"), ("RSJ", "本溪市人力资源和社会保障局")]
# A business the demo citizen legally represents (a made-up code with valid GB 32100 check characters).
DEMO_BUSINESS = {"uscc": "91210502MA0YTKH09B", "name": "本溪太子河科技有限公司"}
# The password policy refuses the city's name ("benxi") in passwords; demo state made before that
# remembers the old password (LEGACY_PASSWORD) and keeps it.
DEMO_USER = {"username": "zhangsan", "password": "Taizihe-demo-2026", "name": "张三",
             "id_number": "11010519491231002X", "phone": "13800138000", "email": "zhangsan@example.cn"}
LEGACY_PASSWORD = "Benxi-demo-2026"
OUTBOX = INSTANCE / "outbox"  # where the hub writes the messages it would send (IDP_OUTBOX_DIR)
BIN = Path(sys.executable).parent
# Bumped when the registration of the subsites changes: older state is re-provisioned.
# 2: logout URIs (back-channel, front-channel, post-logout redirect).
# 3: departments, the citizen verified at a counter, official of the market regulator, a business.
# 4: the market regulator's approval seal, the demo official authorized for it, a login certificate.
STATE_VERSION = 4
DEMO_SEAL = {"department": "SCJGJ", "name": "本溪市市场监督管理局行政审批专用章", "type": "审批专用章"}
# The demo official's login certificate (PKCS#12 in the instance directory, mode 0600) for `sealctl login`.
DEMO_P12_PASSWORD = "Taizihe-p12-2026"


def idp(*args: str) -> dict:
    env = {**os.environ, "IDP_ISSUER": ISSUER, "IDP_OUTBOX_DIR": str(OUTBOX)}
    out = subprocess.run([str(BIN / "idp"), *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}


def _unless_exists(step):
    """Run a provisioning step; one that finds its object already there (a re-provision) is fine."""
    try:
        return step()
    except subprocess.CalledProcessError as exc:
        if not any(w in exc.stderr for w in ("exists", "taken", "already")):
            raise
        return None


def save(state: dict) -> None:
    INSTANCE.mkdir(exist_ok=True)
    STATE.write_text(json.dumps(state, ensure_ascii=False, indent=2))
    os.chmod(STATE, 0o600)


def provision() -> dict:
    print("• setting up the database and keys (idp init)…", flush=True)
    idp("init")
    state = json.loads(STATE.read_text()) if STATE.exists() else {}
    if state.get("issuer") != ISSUER:
        state = {"issuer": ISSUER}
    if state.get("version") != STATE_VERSION:
        for key, _, _ in SUBSITES:
            state.pop(key, None)  # registered without what this version needs: register again
        state["version"] = STATE_VERSION
    if "user" not in state:
        print("• creating the demo citizen…", flush=True)
        u = DEMO_USER
        try:
            idp("users", "create", "--username", u["username"], "--password", u["password"], "--name", u["name"],
                "--id-number", u["id_number"], "--phone", u["phone"], "--email", u["email"])
        except subprocess.CalledProcessError as exc:
            if "taken" not in exc.stderr:
                raise
        state["user"], state["password"] = u["username"], u["password"]
    if "business" not in state:
        print("• departments, a real-name check at a counter, an official, a business…", flush=True)
        for code, name in DEPARTMENTS:
            _unless_exists(lambda: idp("departments", "create", "--code", code, "--name", name))
        idp("users", "verify", "--username", DEMO_USER["username"], "--method", "counter")
        _unless_exists(lambda: idp("officials", "add", "--username", DEMO_USER["username"], "--department", "SCJGJ",
                                   "--role", "approver"))
        state["business"] = _unless_exists(lambda: idp("businesses", "create", "--uscc", DEMO_BUSINESS["uscc"],
                                                       "--name", DEMO_BUSINESS["name"],
                                                       "--representative", DEMO_USER["username"])) or {}
        save(state)
    provision_seal(state)
    for key, name, port in SUBSITES:
        if key not in state:
            print(f"• registering the subsite {name}…", flush=True)
            state[key] = idp("clients", "create", "--name", name, "--first-party",
                             "--redirect-uri", f"http://127.0.0.1:{port}/callback",
                             "--post-logout-redirect-uri", f"http://127.0.0.1:{port}/",
                             "--backchannel-logout-uri", f"http://127.0.0.1:{port}/backchannel-logout",
                             "--frontchannel-logout-uri", f"http://127.0.0.1:{port}/frontchannel-logout")
            save(state)  # its secret is shown only now: keep it even if a later step fails
    save(state)
    return state


def provision_seal(state: dict) -> None:
    """The market regulator's approval seal, the demo official authorized to apply it, and the
    official's login certificate for the officials' tool (each step finds what is already there)."""
    seal = next((x for x in idp("seals", "list", "--department", DEMO_SEAL["department"])
                 if x["name"] == DEMO_SEAL["name"] and x["status"] != "revoked"), None)
    if seal is None:
        print("• creating the seal 本溪市市场监督管理局行政审批专用章…", flush=True)
        seal = idp("seals", "create", "--department", DEMO_SEAL["department"], "--name", DEMO_SEAL["name"],
                   "--type", DEMO_SEAL["type"])
    idp("seals", "authorize", "--seal", str(seal["id"]), "--username", DEMO_USER["username"])
    state["seal"] = seal["id"]
    p12 = INSTANCE / f"{DEMO_USER['username']}.p12"
    if not p12.exists():
        print("• issuing the demo official's login certificate…", flush=True)
        INSTANCE.mkdir(exist_ok=True)
        idp("pki", "issue", "--username", DEMO_USER["username"], "--out", str(p12), "--password", DEMO_P12_PASSWORD)
    os.chmod(p12, 0o600)  # `idp pki issue` creates it 0600; kept so if it was copied in
    state["p12"], state["p12_password"] = str(p12), DEMO_P12_PASSWORD
    save(state)


def wait_for(url: str, timeout: float = 30) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not come up within {timeout:.0f} s")


def print_new_messages(seen: set[Path]) -> set[Path]:
    """Show what the hub "sent" (the development outbox) since the last call."""
    current = set(OUTBOX.glob("*.json"))
    for path in sorted(current - seen):
        try:
            m = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        print(f"[outbox] {m['channel']} to {m['to']}: {m['subject'] + ' — ' if m.get('subject') else ''}{m['body']}", flush=True)
    return current


def main() -> None:
    state = provision()
    procs = []
    env = {**os.environ, "IDP_ISSUER": ISSUER, "IDP_OUTBOX_DIR": str(OUTBOX)}
    try:
        procs.append(subprocess.Popen([str(BIN / "idp"), "serve", "--port", str(HUB_PORT)], cwd=ROOT, env=env))
        wait_for(f"{ISSUER}/readyz")
        for key, name, port in SUBSITES:
            procs.append(subprocess.Popen([sys.executable, "-m", "clients.subsite", "--name", name, "--port", str(port),
                                           "--issuer", ISSUER, f"--client-id={state[key]['client_id']}",
                                           f"--client-secret={state[key]['client_secret']}",
                                           f"--scope={SUBSITE_SCOPES[key]}"], cwd=ROOT))
        for _, _, port in SUBSITES:
            wait_for(f"http://127.0.0.1:{port}/")
        u = DEMO_USER
        print(f"""
==============================================================
 本溪政务网 统一身份认证 demo is running (Ctrl-C stops it)
   hub (identity provider): {ISSUER}
   subsite 1: http://127.0.0.1:{SUBSITES[0][2]}/   {SUBSITES[0][1]}
   subsite 2: http://127.0.0.1:{SUBSITES[1][2]}/   {SUBSITES[1][1]}
 demo citizen: username {u['username']}  password {state.get('password', LEGACY_PASSWORD)}
 Sign in on subsite 1, then open subsite 2 and click sign in:
 you are signed in there without typing a password. Subsite 1 asks whom
 you act for: {DEMO_BUSINESS['name']} (legal representative) or yourself.
 Add TOTP at {ISSUER}/account/security to reach assurance level 2.
 Register at {ISSUER}/register or reset a password at {ISSUER}/reset:
 no SMS or email is sent; the codes are printed below (files in {OUTBOX}).
 Official {u['username']} may apply seal {state.get('seal')} ({DEMO_SEAL['name']}); sign in with the tool:
   {BIN / 'sealctl'} login --hub {ISSUER} --p12 {state.get('p12')} --password {state.get('p12_password')}
==============================================================
""", flush=True)
        seen = set(OUTBOX.glob("*.json"))
        while all(p.poll() is None for p in procs):
            seen = print_new_messages(seen)
            time.sleep(0.5)
        raise SystemExit("a demo process stopped unexpectedly")
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
