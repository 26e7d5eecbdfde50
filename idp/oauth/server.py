"""The whole protocol surface in one place: every grant, extension and endpoint the hub has."""
from __future__ import annotations

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.authenticate_client import authenticate_client_secret_basic
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc9207 import IssuerParameter
from flask import Flask, current_app, g, request

from . import clients, tokens
from .official_grant import OfficialJWTBearerGrant
from .endpoints import IntrospectionEndpoint, RevocationEndpoint
from .grants import (AuthorizationCodeGrant, ClientCredentialsGrant, OpenIDCode, PrivateKeyJWT,
                     RefreshTokenGrant, StrictPKCE)


class _Issuer(IssuerParameter):
    def get_issuer(self):
        return current_app.config["ISSUER"]


def _query_client(client_id):
    # Authlib asks several times per request (once per auth method tried): look up once.
    cache = g.setdefault("_idp_clients", {})
    if client_id not in cache:
        cache[client_id] = clients.get_client(client_id)
    return cache[client_id]


class _IssuerRequest(FlaskOAuth2Request):
    """The request as Authlib sees it, with its URL built from the configured issuer, not Host."""

    def __init__(self, req):
        OAuth2Request.__init__(self, method=req.method, uri=current_app.config["ISSUER"] + req.full_path,
                               headers=req.headers)
        self._request = req
        self.payload = FlaskOAuth2Payload(req)


class _Server(AuthorizationServer):
    def create_oauth2_request(self, req):
        return _IssuerRequest(request._get_current_object())  # Authlib reads it often: not through the proxy


def _client_secret_basic(query_client, req):
    """Authlib's client_secret_basic, answering a malformed header with invalid_client (RFC 6749 §5.2)."""
    try:
        return authenticate_client_secret_basic(query_client, req)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidClientError(status_code=401, description="Malformed HTTP Basic credentials.") from exc


def build_authorization_server(app: Flask) -> AuthorizationServer:
    server = _Server(app, query_client=_query_client, save_token=tokens.save_token)
    server.register_token_generator("default", tokens.generate_token)
    server.register_client_auth_method("client_secret_basic", _client_secret_basic)
    server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT())

    server.register_grant(AuthorizationCodeGrant, [StrictPKCE(required=True), OpenIDCode(require_nonce=False)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(OfficialJWTBearerGrant)  # RFC 7523 §2.1 + DPoP: the officials' tool

    server.register_endpoint(RevocationEndpoint)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_extension(_Issuer())  # RFC 9207 iss in authorization responses
    return server
