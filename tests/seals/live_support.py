"""A live hub provisioned for sealing, the way an operator does it with ``idp``: a department, an
official with a PKCS#12 login certificate, a seal authorized for them, and the CA chain and TSA
certificate as files. Used by ``tests/e2e/test_live_seals.py`` and ``tests/browser/test_seals_chromium.py``."""
from __future__ import annotations

import json
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import requests
from asn1crypto import pem as asn1_pem

from tests.e2e.hub import IDP, PASSWORD, LiveHub, start_hub

P12_PASSWORD = "p12-" + secrets.token_hex(6)
DEPARTMENT = ("scjgj", "本溪市市场监督管理局")
SEAL_NAME = "本溪市市场监督管理局行政审批专用章"
OFFICIAL = ("zhangsan", "张三")


def idp_at_once(hub: LiveHub, *commands) -> list[subprocess.CompletedProcess]:
    """Several ``idp`` commands in parallel processes (start-up dominates each); their results in order."""
    procs = [subprocess.Popen([str(IDP), *map(str, args)], env=hub.env, cwd=hub.workdir, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for args in commands]
    results = []
    for args, p in zip(commands, procs):
        out, err = p.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(args, p.returncode, out, err))
    return results


def ok_json(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, (result.args, result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


@dataclass
class Sealing:
    hub: LiveHub
    work: Path
    p12: Path           # the official's login certificate and key (P12_PASSWORD)
    serial: str         # its serial
    seal: int           # the seal's id
    chain: Path         # `idp pki ca-cert`: issuing CA, then root (PEM)
    root: Path          # the root alone (PEM)
    tsa: Path           # GET /tsa/certificate.pem


def start_sealing_hub(work: Path, env: dict | None = None) -> Sealing:
    """``idp init`` + ``idp serve``, provisioned with the operators' commands (independent ones in
    parallel). The caller stops ``.hub``."""
    (work / "hub").mkdir()
    username, name = OFFICIAL
    hub, _ = start_hub(work / "hub", env=env, provision=[
        ["users", "create", "--username", username, "--password", PASSWORD, "--name", name],
        ["departments", "create", "--code", DEPARTMENT[0], "--name", DEPARTMENT[1]],
    ])
    try:
        p12 = work / f"{username}.p12"
        added, seal, chain = idp_at_once(hub, ["officials", "add", "--username", username, "--department",
                                               DEPARTMENT[0]],
                                         ["seals", "create", "--department", DEPARTMENT[0], "--name", SEAL_NAME],
                                         ["pki", "ca-cert"])
        ok_json(added)
        seal = ok_json(seal)
        authorized, issued = idp_at_once(
            hub, ["seals", "authorize", "--seal", seal["id"], "--username", username],
            ["pki", "issue", "--username", username, "--out", p12, "--password", P12_PASSWORD])
        ok_json(authorized)
        issued = ok_json(issued)
        assert chain.returncode == 0, chain.stderr
        (work / "chain.pem").write_text(chain.stdout)
        blocks = [der for _, _, der in asn1_pem.unarmor(chain.stdout.encode(), multiple=True)]
        (work / "root.pem").write_bytes(asn1_pem.armor("CERTIFICATE", blocks[-1]))
        tsa = requests.get(hub.url("/tsa/certificate.pem"), timeout=10)
        assert tsa.status_code == 200, tsa.text
        (work / "tsa.pem").write_bytes(tsa.content)
    except BaseException:
        hub.stop()
        raise
    return Sealing(hub=hub, work=work, p12=p12, serial=issued["serial"], seal=seal["id"],
                   chain=work / "chain.pem", root=work / "root.pem", tsa=work / "tsa.pem")
