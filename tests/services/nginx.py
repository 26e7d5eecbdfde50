"""A real nginx (the Debian package) for tests, running the shipped ``deploy/nginx/idp.conf``.

``start_nginx(workdir, upstream_port, client_ca_file)`` renders the production configuration for a
temporary directory (pid, logs and temp paths inside it, ``listen 127.0.0.1:<free port> ssl``, a
server certificate from a test CA made with ``cryptography``, the hub on ``upstream_port``) and
starts nginx in the foreground of a child process. Not installed: skipped, or failed under CI=true.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.e2e.hub import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "nginx" / "idp.conf"
DEBIAN_PACKAGE = "nginx"
CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def find_nginx() -> str | None:
    for path in (os.environ.get("IDP_NGINX"), *CANDIDATES, shutil.which("nginx")):
        if path and os.access(path, os.X_OK):
            return path
    return None


def require_nginx() -> str:
    """The nginx binary, or skip the test (fail it under CI=true: CI must have every service)."""
    import pytest

    from tests.conftest import in_ci

    path = find_nginx()
    if path:
        return path
    msg = f"nginx not found ($IDP_NGINX, {', '.join(CANDIDATES)}, PATH); apt-get install {DEBIAN_PACKAGE}"
    if in_ci():
        pytest.fail(msg + " -- required under CI=true", pytrace=False)
    pytest.skip(msg)
    raise AssertionError("unreachable")  # pragma: no cover


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_server_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("test TLS CA")).issuer_name(_name("test TLS CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "tls-ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def render(port: int, upstream_port: int, client_ca: Path, cert: Path, key: Path, proxy_bind: str | None) -> str:
    """The shipped server configuration with this test's addresses and files (nothing else changed)."""
    text = SHIPPED.read_text()
    start = text.index("server {")  # drop the port-80 redirect server (no privileged ports here)
    end = text.index("server {", start + 1)
    text = text[:start] + text[end:]
    replacements = {
        "listen 443 ssl http2;": f"listen 127.0.0.1:{port} ssl;",
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
        "/etc/nginx/tls/idp.example.gov.cn.fullchain.pem": str(cert),
        "/etc/nginx/tls/idp.example.gov.cn.key.pem": str(key),
        "/etc/nginx/idp-client-ca.pem": str(client_ca),
    }
    for old, new in replacements.items():
        assert old in text, f"deploy/nginx/idp.conf no longer contains {old!r}: update tests/services/nginx.py"
        text = text.replace(old, new)
    if proxy_bind:
        text = text.replace("upstream idp_hub {", f"proxy_bind {proxy_bind};\n\nupstream idp_hub {{", 1)
    return text


def main_config(workdir: Path, server_conf: Path) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""  # as root, workers would otherwise run as nobody
    return f"""{user}daemon off;
master_process on;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {workdir}/access.log;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    include {server_conf};
}}
"""


@dataclass
class Nginx:
    proc: subprocess.Popen
    port: int
    workdir: Path
    tls_ca: Path

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return (self.workdir / "error.log").read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        stop_process(self.proc)


def start_nginx(workdir: Path, upstream_port: int, client_ca: Path, *, proxy_bind: str | None = None,
                timeout: float = 15, port: int | None = None) -> Nginx:
    """``port``: listen there (e.g. the port of a hub's ``IDP_ISSUER``, chosen before the hub started;
    browsers' POSTs must come from the issuer's origin); default: a free port, retried if taken."""
    binary = require_nginx()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tls_ca, cert, key = make_server_tls(workdir)
    wanted = port
    for attempt in range(1 if wanted else 3):
        port = wanted or free_port()
        server_conf = workdir / "idp.conf"
        server_conf.write_text(render(port, upstream_port, client_ca, cert, key, proxy_bind))
        main = workdir / "nginx.conf"
        main.write_text(main_config(workdir, server_conf))
        check = subprocess.run([binary, "-t", "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(main)], capture_output=True, text=True,
                               timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the configuration:\n{check.stderr}")
        proc = subprocess.Popen([binary, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(main)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = Nginx(proc, port, workdir, tls_ca)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                requests.get(server.base + "/readyz", verify=str(tls_ca), timeout=2)
                return server
            except requests.RequestException:
                time.sleep(0.1)
        server.stop()
        if "Address already in use" not in server.log():
            raise RuntimeError(f"nginx did not start:\n{server.log()}")
    raise RuntimeError("nginx could not bind a port after 3 attempts")
