"""Discovery and JWKS answered before Flask: the two public documents every relying party fetches.

Both are the same bytes for everyone (the metadata is fixed at start-up; the JWKS changes only on
a key rotation, which ``KeyStore.jwks_json`` notices by itself), so a plain ``GET`` of either is
answered here, with the headers the Flask views send (``idp.oauth.views``) and counted in the
request metrics under the same endpoint names. Anything else (``HEAD``, a query string, any other
path, an app without keys) goes on to Flask unchanged. Flask's per-request work (request context,
session, hooks) was most of a discovery request's time.
"""
from __future__ import annotations

from time import perf_counter

from flask import Flask

from ..ops.metrics import observe_request
from .discovery import metadata_json

_DISCOVERY = ("oauth.discovery", "public, max-age=3600")
_JWKS = ("oauth.jwks", "public, max-age=300")  # short: relying parties see a rotation quickly
# What the app's after_request hook adds to every response (``idp._register_hooks``).
COMMON_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"))
PATHS = {
    "/.well-known/openid-configuration": _DISCOVERY,
    "/.well-known/oauth-authorization-server": _DISCOVERY,
    "/jwks.json": _JWKS,
}


class PublicDocuments:
    """WSGI middleware in front of the Flask app (inside the request-id and proxy middlewares)."""

    def __init__(self, wsgi_app, app: Flask):
        self.wsgi_app = wsgi_app
        self.app = app
        self._discovery: bytes | None = None

    def _body(self, endpoint: str) -> bytes | None:
        if endpoint == "oauth.jwks":
            store = self.app.extensions.get("idp.keystore")
            return store.jwks_json() if store is not None else None
        if self._discovery is None:
            with self.app.app_context():
                self._discovery = metadata_json()
        return self._discovery

    def __call__(self, environ, start_response):
        spec = PATHS.get(environ.get("PATH_INFO", ""))
        if spec is None or environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING"):
            return self.wsgi_app(environ, start_response)
        started = perf_counter()
        endpoint, cache_control = spec
        body = self._body(endpoint)
        if body is None:
            return self.wsgi_app(environ, start_response)
        start_response("200 OK", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Cache-Control", cache_control), ("Access-Control-Allow-Origin", "*"), *COMMON_HEADERS,
        ])
        observe_request(endpoint, "GET", "2xx", perf_counter() - started)
        return [body]
