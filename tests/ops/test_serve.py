"""``idp serve`` (Granian) pieces that need no running server: the port check that keeps a second
``SO_REUSEPORT`` server off a taken port, the removal of server environment variables that would pose
as request headers, and Granian's own log lines through the hub's JSON formatter."""
from __future__ import annotations

import json
import logging
import logging.config
import socket

import pytest

from idp import serve


def test_a_taken_port_is_refused_before_granian_binds_it():
    """Granian's per-worker ``SO_REUSEPORT`` sockets would share a port with another such server;
    ``ensure_port_free`` refuses any port something listens on, and accepts a free one."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as another Granian would
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(serve.PortInUse, match="Address already in use"):
            serve.ensure_port_free("127.0.0.1", port)
    serve.ensure_port_free("127.0.0.1", port)  # closed: free again


def test_server_environment_never_poses_as_a_request_header():
    """RFC 3875 §4.1.18 maps request headers to ``HTTP_*`` variables; Granian starts each environ from
    the server's ``os.environ``, so ``HTTP_X_FORWARDED_FOR`` or ``HTTP_PROXY`` set for the server would
    read as headers ("httpoxy"). They are dropped unless the client sent that header itself."""
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        return []

    inherited = {"HTTP_X_FORWARDED_FOR": "10.9.9.9", "HTTP_PROXY": "http://proxy:3128", "CONTENT_TYPE": "text/x"}
    wrapped = serve._WithoutServerHeaders(app, inherited)
    wrapped({**inherited, "REQUEST_METHOD": "GET", "HTTP_USER_AGENT": "ua"}, None)
    assert not set(inherited) & set(seen) and seen["HTTP_USER_AGENT"] == "ua"
    seen.clear()
    wrapped({**inherited, "HTTP_PROXY": "client's own"}, None)
    assert seen["HTTP_PROXY"] == "client's own" and "HTTP_X_FORWARDED_FOR" not in seen


def test_granian_lines_go_through_the_json_formatter(capsys):
    logging.config.dictConfig(serve._log_config("json"))
    try:
        logging.getLogger("_granian").info("Spawning worker-1 with PID: 4242")
        logging.getLogger("_granian.serve").warning("Unexpected exit from worker-1")
    finally:
        logging.config.dictConfig(serve._log_config("text"))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["level"], line["message"]) for line in lines] == [
        ("_granian", "INFO", "Spawning worker-1 with PID: 4242"),
        ("_granian.serve", "WARNING", "Unexpected exit from worker-1")]
    assert all(line["request_id"] == "-" for line in lines)


def test_a_worker_stops_itself_once_its_main_process_is_gone():
    """Granian workers outlive a SIGKILLed main process; ``_exit_with_parent`` sends the worker SIGTERM
    (Granian's graceful stop) as soon as its parent is no longer the one it started under."""
    import signal
    import subprocess
    import sys
    import time

    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", "import time\nfrom idp.serve import _exit_with_parent\n"
                           "_exit_with_parent(-1, interval=0.05)\ntime.sleep(30)"], timeout=20)
    assert proc.returncode == -signal.SIGTERM and time.monotonic() - started < 10
