"""Several hub nodes on one PostgreSQL behind one real nginx, for ``test_multinode.py``.

``Cluster`` holds two ``idp serve`` processes (``LiveHub``) sharing the database, the keys
directory and every ``IDP_*`` setting, and an nginx doing round-robin over them on 127.0.0.1 with
a configuration written by the test. nginx adds ``X-Upstream: <node address>`` to every response,
so a test knows which node answered; with one nginx worker and equal weights the upstream
alternates strictly between the two nodes, and ``Recorder.steer`` uses that to choose the node
the next request goes to.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.e2e.hub import CLI_TIMEOUT, LiveHub, free_port, stop_process
from tests.services.nginx import require_nginx


def nginx_config(workdir: Path, port: int, upstreams: list[int]) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""  # as root, workers would otherwise run as nobody
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in upstreams)
    return f"""{user}daemon off;
master_process on;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format upstream '$request_method $uri $status $upstream_addr $request_time';
    access_log {workdir}/access.log upstream;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    upstream idp_nodes {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://idp_nodes;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 2s;
            proxy_read_timeout 20s;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    proc: subprocess.Popen
    port: int
    workdir: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> list[list[str]]:
        text = (self.workdir / "access.log").read_text(errors="replace")
        return [line.split() for line in text.splitlines() if line.strip()]

    def stop(self) -> None:
        stop_process(self.proc)


def start_nginx(workdir: Path, port: int, upstreams: list[int], timeout: float = 15) -> Nginx:
    binary = require_nginx()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_config(workdir, port, upstreams))
    argv = [binary, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]
    check = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t refused the configuration:\n{check.stderr}")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Nginx(proc, port, workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            requests.get(server.base + "/healthz", timeout=2)
            return server
        except requests.RequestException:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("nginx did not start:\n" + (workdir / "error.log").read_text(errors="replace")[-3000:])


class Recorder:
    """Which node answered each request made through nginx (a ``requests`` response hook)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, int, str]] = []  # (method, path, status, upstream)

    def hook(self, resp: requests.Response, *args, **kwargs):
        with self.lock:
            self.seen.append((resp.request.method, requests.utils.urlparse(resp.url).path, resp.status_code,
                              resp.headers.get("X-Upstream", "")))
        return resp

    def session(self) -> requests.Session:
        s = requests.Session()
        s.hooks["response"].append(self.hook)
        return s

    def last(self) -> str:
        return self.seen[-1][3]

    def served(self, method: str, path: str) -> str:
        """The node that answered the latest ``method path``."""
        return next(up for m, p, _, up in reversed(self.seen) if (m, p) == (method, path))

    def steer(self, base: str, away_from: str) -> None:
        """Make the next request through nginx go to the node that is not ``away_from``."""
        with self.session() as s:
            for _ in range(4):
                if self.last() == away_from:
                    return
                s.get(base + "/healthz", timeout=5)
        raise AssertionError(f"nginx does not alternate: {self.seen[-6:]}")


@dataclass
class Cluster:
    pg: object  # tests.services.postgres.PostgresServer
    dbname: str
    nodes: list[LiveHub]
    nginx: Nginx
    issuer: str
    init_results: list = field(default_factory=list)
    recorder: Recorder = field(default_factory=Recorder)

    @property
    def a(self) -> LiveHub:
        return self.nodes[0]

    @property
    def b(self) -> LiveHub:
        return self.nodes[1]

    def url(self, path: str) -> str:
        return self.issuer + path

    def node_address(self, node: LiveHub) -> str:
        return f"127.0.0.1:{node.port}"

    def sql(self, query: str) -> list:
        return self.pg.execute(query, self.dbname)

    def cli(self, *args: str):
        return self.a.cli(*args)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nginx.stop()


def concurrent_cli(nodes: list[LiveHub], args: list[str]) -> list:
    """The same ``idp`` command started on every node at the same moment (after a shared barrier)."""
    procs = []
    go = time.time() + 0.5
    script = ("import os, sys, time; t=float(sys.argv[1]); time.sleep(max(0, t - time.time())); "
              "os.execv(sys.argv[2], sys.argv[2:])")
    import sys

    try:
        for node in nodes:
            argv = [sys.executable, "-c", script, str(go), *node._argv(args)]
            procs.append((argv, subprocess.Popen(argv, env=node.env, cwd=node.workdir, text=True,
                                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
        results = [(argv[3:], p, *p.communicate(timeout=CLI_TIMEOUT)) for argv, p in procs]
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return [LiveHub._parse(argv, p.returncode, out, err) for argv, p, out, err in results]


def start_cluster(workdir: Path, pg, dbname: str, provision: list[list[str]], n: int = 2,
                  extra_env: dict | None = None) -> tuple[Cluster, list]:
    """``idp init`` on every node at once, then the nodes and nginx; returns the provisioning results."""
    url = pg.create_database(dbname)
    nginx_port = free_port()
    issuer = f"http://127.0.0.1:{nginx_port}"
    shared = {
        "IDP_ISSUER": issuer,
        "IDP_SECRET_KEY": secrets.token_urlsafe(30),
        "IDP_KEYS_PASSPHRASE": secrets.token_urlsafe(24),
        "IDP_KEYS_DIR": str(workdir / "keys"),
        "IDP_OUTBOX_DIR": str(workdir / "outbox"),
        "IDP_TRUSTED_PROXIES": "127.0.0.1",
        **(extra_env or {}),
    }
    nodes = []
    for i in range(n):
        (workdir / f"node{i}").mkdir()
        node = LiveHub(workdir / f"node{i}", url, "postgresql")
        shutil.rmtree(node.keys_dir)
        node.keys_dir = workdir / "keys"
        node.env.update(shared)
        node.issuer = f"http://127.0.0.1:{node.port}"  # the node itself (readiness, direct requests)
        nodes.append(node)
    init_results = concurrent_cli(nodes, ["init"])
    nginx = start_nginx(workdir / "nginx", nginx_port, [node.port for node in nodes])
    cluster = Cluster(pg, dbname, nodes, nginx, issuer, init_results)
    try:
        for node in nodes:
            node.spawn()
        results = nodes[0].cli_many(provision) if provision else []
        for node in nodes:
            node.start()
            # A port race in LiveHub.start would have moved the node off nginx's upstream.
            assert node.env["IDP_ISSUER"] == issuer, "a node lost its port to another process; run again"
    except BaseException:
        cluster.stop()
        raise
    return cluster, results


def worker_pids(master: int) -> list[int]:
    """The Granian workers (children) of ``master``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == master:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime
