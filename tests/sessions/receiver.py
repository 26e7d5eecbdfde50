"""A local back-channel logout receiver: records what it is sent, answers as told."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class Receiver:
    def __init__(self, statuses=None, delay: float = 0.0, delays=None):
        self.statuses = list(statuses or [])  # answers for successive requests; 200 once exhausted
        self.delays = list(delays or [])  # seconds to stall successive requests; then ``delay``
        self.delay = delay
        self.received: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                with outer._lock:
                    outer.received.append(parse_qs(body).get("logout_token", [""])[0])
                    status = outer.statuses.pop(0) if outer.statuses else 200
                    delay = outer.delays.pop(0) if outer.delays else outer.delay
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/backchannel-logout"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
