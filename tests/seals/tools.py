"""Outside tools that judge the hub's seals (not written here): poppler's ``pdfsig``/``pdftoppm``, NSS's
``certutil``, ``openssl``. Missing: the test is skipped, and fails under CI=true."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGES = {"pdfsig": "poppler-utils", "pdftoppm": "poppler-utils", "certutil": "libnss3-tools",
            "pk12util": "libnss3-tools", "openssl": "openssl"}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def tool(name: str) -> str:
    """The program's path; skip without it, fail under CI=true."""
    found = shutil.which(name)
    if found:
        return found
    msg = f"{name} not found: install the Debian package {PACKAGES.get(name, name)}"
    if in_ci():
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def nss_db_trusting(directory: Path, root_pem: bytes) -> str:
    """An NSS database (``certutil``) in ``directory`` whose only trust anchor is ``root_pem``, trusted
    for signatures (``-t C,C,C``: the e-mail/object-signing slot that PDF validation uses, and the SSL
    slot), as a city would hand to anyone verifying its seals. Returns ``sql:DIR`` for ``-nssdir``."""
    certutil = tool("certutil")
    directory = Path(directory)
    if not (directory / "cert9.db").exists():
        directory.mkdir(parents=True, exist_ok=True)
        root = directory / "hub-root.pem"
        root.write_bytes(root_pem)
        for args in (["-N", "--empty-password"], ["-A", "-n", "hub-root", "-t", "C,C,C", "-i", str(root)]):
            r = subprocess.run([certutil, "-d", f"sql:{directory}", *args], capture_output=True, timeout=60)
            assert r.returncode == 0, r.stderr.decode(errors="replace")
    return f"sql:{directory}"


def pdfsig(path: Path, nssdir: str, home: Path) -> str:
    """``pdfsig -nssdir DB FILE`` (HOME apart, so no personal NSS store is read); its stdout."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([tool("pdfsig"), "-nssdir", nssdir, str(path)], capture_output=True, timeout=60,
                       env={**os.environ, "HOME": str(home)})
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout.decode()
