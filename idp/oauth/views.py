"""HTTP glue for the protocol endpoints: parse, call, respond."""
from __future__ import annotations

from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Blueprint, Response, current_app, jsonify, request

from ..accounts.models import Person
from ..db import db
from . import authorize as authorize_endpoint, clients
from . import claims as release
from .discovery import metadata_json

bp = Blueprint("oauth", __name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _server():
    return current_app.extensions["idp.authorization_server"]


def _json(body: bytes, max_age: int) -> Response:
    resp = Response(body, mimetype="application/json")
    resp.headers["Cache-Control"] = f"public, max-age={max_age}"
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


@bp.get("/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server")
def discovery():
    return _json(metadata_json(), 3600)


@bp.get("/jwks.json")
def jwks():
    # Short cache so relying parties see a rotation quickly (a new key is published at once).
    return _json(current_app.extensions["idp.keystore"].jwks_json(), 300)


@bp.route("/authorize", methods=["GET", "POST"])
def authorize():
    return authorize_endpoint.authorize()


def _repeated_parameter() -> Response | None:
    """RFC 6749 §3.2: request parameters MUST NOT be included more than once."""
    if any(len(request.form.getlist(k)) > 1 for k in request.form):
        resp = jsonify({"error": "invalid_request", "error_description": "Parameters must not be repeated."})
        resp.status_code = 400
        resp.headers.update(NO_STORE)
        return resp
    return None


def _committed(resp: Response) -> Response:
    if resp.status_code == 200:
        db.session.commit()
    else:
        db.session.rollback()
    resp.headers.update(NO_STORE)
    return resp


@bp.post("/token")
def token():
    return _repeated_parameter() or _committed(_server().create_token_response())


@bp.post("/revoke")
def revoke():
    return _repeated_parameter() or _committed(_server().create_endpoint_response("revocation"))


@bp.post("/introspect")
def introspect():
    return _repeated_parameter() or _committed(_server().create_endpoint_response("introspection"))


_BEARER_ERRORS = {  # RFC 6750 §3.1
    "invalid_request": (400, "Send the access token in the Authorization header only."),
    "invalid_token": (401, "The access token is invalid, expired or revoked."),
    "insufficient_scope": (403, "The access token lacks the openid scope."),
}


def _bearer_challenge(error: str) -> Response:
    """RFC 6750 §3: no error attribute when no credentials were sent; otherwise the error and its status."""
    realm = f'Bearer realm="{current_app.config["ISSUER"]}"'
    if error in ("missing_authorization", "unsupported_token_type"):
        resp = jsonify({"error": "invalid_request", "error_description": "A bearer access token is required."})
        resp.status_code, header = 401, realm
    else:
        error = error if error in _BEARER_ERRORS else "invalid_token"
        status, description = _BEARER_ERRORS[error]
        resp = jsonify({"error": error, "error_description": description})
        resp.status_code, header = status, f'{realm}, error="{error}"'
    resp.headers["WWW-Authenticate"] = header
    resp.headers.update(NO_STORE)
    return resp


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo():
    """OIDC Core §5.3: claims for the scopes of a valid bearer token with ``openid``."""
    rp = current_app.extensions["idp.resource_protector"]
    if "access_token" in request.values:
        # RFC 6750 §2: we accept the header method only; a token elsewhere (or in two places) is refused.
        return _bearer_challenge("invalid_request")
    try:
        row = rp.acquire_token(["openid"]).row
    except OAuth2Error as error:
        return _bearer_challenge(error.error)
    claims = _userinfo_claims(row)
    if claims is None:
        return _bearer_challenge("invalid_token")
    resp = jsonify(claims)
    resp.headers.update(NO_STORE)
    return resp


def _userinfo_claims(row, person=None) -> dict | None:
    """The claims for a valid access token's row, or None if its person or client is gone or inactive."""
    if person is None and row.person_id:
        person = db.session.get(Person, row.person_id)
    if person is None or not person.active:
        return None
    client = clients.get_client(row.client_id)
    if client is None:
        return None
    return release.userinfo_claims(person, client=client, scopes=set(row.scope.split()), acr=row.acr,
                                   representation_id=row.representation_id)


def userinfo_payload(token_value: str) -> dict | None:
    """UserInfo for a bearer token that is valid and carries ``openid`` (what ``acquire_token(["openid"])``
    accepts, RFC 6750 §3.1 and ``endpoints.AccessTokenValidator``), or None (``idp.oauth.lean``)."""
    from .tokens import find_live_access_with_person

    row, person = find_live_access_with_person(token_value)
    if row is None or "openid" not in row.scope.split():
        return None
    return _userinfo_claims(row, person)
