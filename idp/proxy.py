"""Client addresses behind a reverse proxy, trusting forwarded headers only from IDP_TRUSTED_PROXIES.

The issuer URL never comes from forwarded headers (it is configured), so only the client address
is taken: the rightmost X-Forwarded-For entry that is not itself a trusted proxy.
"""
from __future__ import annotations

import ipaddress

_FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def in_networks(addr: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in networks)


class TrustedProxies:
    def __init__(self, wsgi_app, networks):
        self.wsgi_app = wsgi_app
        self.networks = list(networks)

    def _trusted(self, addr: str) -> bool:
        return in_networks(addr, self.networks)

    def __call__(self, environ, start_response):
        remote = environ.get("REMOTE_ADDR", "")
        environ["idp.peer_addr"] = remote  # the TCP peer, for headers only a proxy may set (certificate login)
        # Came through some proxy, trusted or not (GET /metrics answers direct requests only).
        environ["idp.forwarded"] = any(h in environ for h in _FORWARDING_HEADERS)
        if self.networks and self._trusted(remote):
            hops = [h.strip() for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
            for hop in reversed(hops):
                if not self._trusted(hop):
                    try:
                        ipaddress.ip_address(hop)
                    except ValueError:
                        break
                    environ["REMOTE_ADDR"] = hop
                    break
        else:
            # Headers a proxy would set are ignored from anyone else (a spoof attempt changes nothing).
            environ.pop("HTTP_X_FORWARDED_FOR", None)
        return self.wsgi_app(environ, start_response)
