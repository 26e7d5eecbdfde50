"""The whole protocol surface in one place: every grant, extension and endpoint the hub has."""
from __future__ import annotations

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc9207 import IssuerParameter
from flask import Flask, current_app, g

from . import clients, tokens
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


def build_authorization_server(app: Flask) -> AuthorizationServer:
    server = AuthorizationServer(app, query_client=_query_client, save_token=tokens.save_token)
    server.register_token_generator("default", tokens.generate_token)
    server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT())

    server.register_grant(AuthorizationCodeGrant, [StrictPKCE(required=True), OpenIDCode(require_nonce=False)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)

    server.register_endpoint(RevocationEndpoint)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_extension(_Issuer())  # RFC 9207 iss in authorization responses
    return server
