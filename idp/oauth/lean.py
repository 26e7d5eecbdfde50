"""The busiest protocol requests, answered without Flask's per-request machinery.

A subsite's back end calls the token endpoint for its own access token (``client_credentials``),
introspects the tokens it is shown (RFC 7662) and reads UserInfo (OIDC Core §5.3), many times a
second at a portal's peak. For those requests Flask's request context, hooks, form parser and
response object, and Authlib's request wrapper and grant dispatch, cost several times the work
itself (the signature, the client check, the token lookup).

The code exchange of the single sign-on round trip (``authorization_code`` with HTTP Basic) is
answered here too, by the grant the general path runs, on an Authlib request made from this one.

``LeanEndpoints`` answers the plain, successful form of each request here, in the app context, by
calling the same rules the general path calls: the ``Client`` model's checks, ``grants``'s scope
rule, ``tokens.generate_token``, the introspection endpoint's own lookup and payload, and
``claims.userinfo_claims``. Anything else (another grant, another authentication method, a DPoP
proof, a client that must use DPoP (RFC 9449 §5.2), a repeated or unknown parameter, a wrong
secret, an unknown or inactive token, a database error) is handed to Flask unchanged, body
included, which then gives the standard answer or the standard error. So this path answers 200, or
503 when the database is unreachable (the general path's answer, given at once rather than after a
second wait), or, for a code exchange the grant has begun, the grant's own error (a code is looked up
once: a replayed one revokes its tokens), and the rules and errors stay in one place;
the protocol tests run through it (``tests/oauth/test_lean.py`` checks both paths agree).
"""
from __future__ import annotations

import io
import json
import logging
from http import HTTPStatus
from time import perf_counter
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import Flask
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.datastructures import EnvironHeaders, ImmutableMultiDict

from ..ops.metrics import observe_request
from .documents import COMMON_HEADERS

log = logging.getLogger(__name__)
_FORM = "application/x-www-form-urlencoded"
_NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))
_TOKEN_FIELDS = frozenset({"grant_type", "scope", "code", "redirect_uri", "code_verifier"})


class _Decline(Exception):
    """Not the plain successful case: the general path answers."""


def _read_form(environ, limit: int, allowed: frozenset[str]) -> dict[str, str]:
    """The body's parameters, or ``_Decline`` (the body read so far is put back first)."""
    if environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower() != _FORM:
        raise _Decline
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        raise _Decline from None
    if not 0 < length <= limit:
        raise _Decline
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)  # whatever happens next, Flask can read it again
    if len(body) != length:
        raise _Decline
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise _Decline from None
    form = dict(pairs)
    # RFC 6749 §3.2: no parameter twice; and only the ones this plain case knows, none empty.
    if len(form) != len(pairs) or not form.keys() <= allowed or not all(form.values()):
        raise _Decline
    return form


def _basic_client(environ, endpoint: str):
    """The client authenticated by ``client_secret_basic`` (RFC 6749 §2.3.1), as Authlib's
    ``authenticate_client_secret_basic`` and ``ClientAuthentication`` decide it, or ``_Decline``."""
    from .clients import get_client

    header = environ.get("HTTP_AUTHORIZATION")
    if not header or header[:6].lower() != "basic ":
        raise _Decline
    try:
        client_id, secret = extract_basic_authorization({"Authorization": header})
    except (ValueError, UnicodeDecodeError):
        raise _Decline from None
    if not client_id or not secret:
        raise _Decline
    client = get_client(client_id)
    if (client is None or not client.check_endpoint_auth_method("client_secret_basic", endpoint)
            or not client.check_client_secret(secret)):
        raise _Decline
    return client


def _end_session(db, commit: bool) -> None:
    """Commit (or roll back) the request's ORM session if the grant made one. The plain exchange makes
    none (its statements run on the driver connection, ``idp.dbread``); making one only to commit
    nothing showed as about 3 % of the SSO round trip in a py-spy profile."""
    if db.session.registry.has():
        if commit:
            db.session.commit()
        else:
            db.session.rollback()


class _FormRequest(OAuth2Request):
    """Authlib's view of a form POST read here (no query string: those are declined): what
    ``server._IssuerRequest`` gives Authlib on the general path, the URL from the issuer."""

    def __init__(self, uri: str, environ, form: dict):
        super().__init__("POST", uri, headers=EnvironHeaders(environ))
        self.payload = BasicOAuth2Payload(form)
        self._form = ImmutableMultiDict(form)

    @property
    def args(self):
        return ImmutableMultiDict()

    @property
    def form(self):
        return self._form


class LeanEndpoints:
    """WSGI middleware in front of the Flask app (inside ``PublicDocuments``)."""

    def __init__(self, wsgi_app, app: Flask):
        self.wsgi_app = wsgi_app
        self.app = app
        self.routes = {
            ("POST", "/token"): ("oauth.token", self._token),
            ("POST", "/introspect"): ("oauth.introspect", self._introspect),
            ("GET", "/userinfo"): ("oauth.userinfo", self._userinfo),
        }

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        route = self.routes.get((method, environ.get("PATH_INFO")))
        if (route is None or environ.get("QUERY_STRING") or "idp.keystore" not in self.app.extensions
                or environ.get("HTTP_DPOP") is not None):
            return self.wsgi_app(environ, start_response)
        started = perf_counter()
        endpoint, handler = route
        try:
            with self.app.app_context():
                answer = handler(environ)
        except _Decline:
            return self.wsgi_app(environ, start_response)
        except (OperationalError, InterfaceError) as err:
            # The database is unreachable: answer as the general path would (``idp.errors``), at once,
            # rather than have it wait for a connection a second time.
            log.error("database unavailable: %s", type(err).__name__)
            return self._answer(start_response, endpoint, method, started, "503 Service Unavailable",
                                {"error": "temporarily_unavailable", "error_description": self._unavailable()})
        except Exception:  # noqa: BLE001 - anything unexpected: the general path answers (and logs it)
            return self.wsgi_app(environ, start_response)
        if isinstance(answer, dict):
            return self._answer(start_response, endpoint, method, started, "200 OK", answer)
        code, payload, headers = answer  # a grant's own answer: its status and its headers
        extra = [(k, v) for k, v in headers if k.lower() not in ("cache-control", "pragma", "content-type")]
        return self._answer(start_response, endpoint, method, started, f"{code} {HTTPStatus(code).phrase}", payload,
                            extra)

    @staticmethod
    def _answer(start_response, endpoint: str, method: str, started: float, status: str, payload: dict,
                extra: list = ()):
        body = json.dumps(payload, separators=(",", ":")).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                *_NO_STORE, *extra, *COMMON_HEADERS])
        observe_request(endpoint, method, f"{status[0]}xx", perf_counter() - started)
        return [body]

    def _unavailable(self) -> str:
        from ..errors import UNAVAILABLE
        from ..i18n import in_english

        with self.app.app_context():
            return in_english(UNAVAILABLE)

    def _limit(self) -> int:
        return int(self.app.config["MAX_CONTENT_LENGTH"])

    def _token(self, environ):
        form = _read_form(environ, self._limit(), _TOKEN_FIELDS)
        grant_type = form.get("grant_type")
        if grant_type == "client_credentials":
            return self._client_credentials(environ, form)
        if grant_type == "authorization_code":
            return self._authorization_code(environ, form)
        raise _Decline

    def _client_credentials(self, environ, form: dict) -> dict:
        """RFC 6749 §4.4.2: ``grant_type=client_credentials`` (and ``scope``) with HTTP Basic."""
        from . import tokens
        from .grants import client_credentials_scope_ok

        if not form.keys() <= {"grant_type", "scope"}:
            raise _Decline
        client = _basic_client(environ, "token")
        scope = form.get("scope")
        if (not client.check_grant_type("client_credentials") or not client_credentials_scope_ok(client, scope)
                or client.dpop_bound_access_tokens):  # RFC 9449 §5.2: a proof required, none sent here
            raise _Decline
        return tokens.issue_client_token(client, scope)

    def _authorization_code(self, environ, form: dict):
        """RFC 6749 §4.1.3 with HTTP Basic: the code exchange of a subsite's back end, by the grant the
        general path runs (``grants.AuthorizationCodeGrant`` with its PKCE and OpenID Connect
        extensions, as the authorization server registered it) on an Authlib request made from this
        one. Once the grant has started, its errors are answered here as the general path answers them
        (``AuthorizationServer.handle_error_response``): looking a code up has consequences (a
        replayed code revokes its tokens and is audited), so it must happen once."""
        from ..db import db
        from ..errors import unexpected_failure
        from ..i18n import in_english

        if not form.keys() <= {"grant_type", "code", "redirect_uri", "code_verifier"}:
            raise _Decline
        client = _basic_client(environ, "token")
        if not client.check_grant_type("authorization_code") or client.dpop_bound_access_tokens:
            raise _Decline  # RFC 9449 §5.2: a proof required, none sent here
        server = self.app.extensions["idp.authorization_server"]
        request = _FormRequest(self.app.config["ISSUER"] + "/token", environ, form)
        try:
            grant = server.get_token_grant(request)
            grant.validate_token_request()
            answer = grant.create_token_response()
            _end_session(db, commit=True)  # what the grant wrote in the request's session, if it used one
        except OAuth2Error as error:
            _end_session(db, commit=False)  # as the view does for any answer but 200 (``views._committed``)
            return error(server.get_error_uri(request, error))
        except (OperationalError, InterfaceError):
            raise  # 503, as everywhere
        except Exception:  # noqa: BLE001 - begun, so not run again: the general path's answer to the unexpected
            _end_session(db, commit=False)
            return 500, {"error": "server_error", "error_description": in_english(unexpected_failure())}, []
        return answer

    def _introspect(self, environ) -> dict:
        """RFC 7662 §2.1 with HTTP Basic: the endpoint's own lookup, permission and payload."""
        form = _read_form(environ, self._limit(), frozenset({"token", "token_type_hint"}))
        if "token" not in form:
            raise _Decline
        client = _basic_client(environ, "introspection")
        endpoint = self.app.extensions["idp.introspection"]
        token = endpoint.query_token(form["token"], form.get("token_type_hint"))
        if token is not None and not endpoint.check_permission(token, client, None):
            token = None
        return endpoint.create_introspection_payload(token)

    def _userinfo(self, environ) -> dict:
        """OIDC Core §5.3.1 with the token in the Authorization header (RFC 6750 §2.1)."""
        from .views import userinfo_payload

        header = environ.get("HTTP_AUTHORIZATION") or ""
        parts = header.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer" or environ.get("CONTENT_LENGTH") not in (None, "", "0"):
            raise _Decline
        payload = userinfo_payload(parts[1])
        if payload is None:
            raise _Decline
        return payload
