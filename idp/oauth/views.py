"""HTTP glue for the protocol endpoints: parse, call, respond."""
from __future__ import annotations

from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Blueprint, Response, current_app, jsonify, request

from ..accounts.models import Person
from ..audit.service import record
from ..db import db
from . import authorize as authorize_endpoint, clients, dpop, par, tokens
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


@bp.post("/par")
def pushed_authorization_request():
    return par.push()  # RFC 9126 §2


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


def _dpop_challenge(error: str, description: str, row=None, reason: str | None = None, status: int = 401) -> Response:
    """RFC 9449 §7.1: 401 with the ``DPoP`` challenge; a refused proof or a bound token tried as Bearer
    is audited (a stolen token, or a client that lost its key)."""
    if reason is not None and row is not None:
        record("dpop.refused", actor=f"client:{row.client_id}", outcome="refused",
               detail={"reason": reason, "path": request.path})
        db.session.commit()
    resp = jsonify({"error": error, "error_description": description})
    resp.status_code = status
    resp.headers["WWW-Authenticate"] = dpop.www_authenticate(error, description)
    resp.headers.update(NO_STORE)
    return resp


def _dpop_userinfo(value: str) -> Response:
    """RFC 9449 §7.1: ``Authorization: DPoP <token>`` with a proof for this request and this token
    (``ath``, §4.3) by the key the token is bound to."""
    row = tokens.find_access_token(value)
    if row is None or row.person_id is None:
        return _dpop_challenge("invalid_token", "The access token is invalid, expired or revoked.")
    if row.cnf_jkt is None:
        return _dpop_challenge("invalid_token", "The access token is not bound to a key; send it as Bearer.")
    if "openid" not in row.scope.split():
        return _dpop_challenge("insufficient_scope", _BEARER_ERRORS["insufficient_scope"][1], status=403)
    try:
        jkt = dpop.check_proof(request.headers, method=request.method,
                               url=current_app.config["ISSUER"] + request.path, access_token=value)
    except dpop.DPoPError as exc:
        # invalid_dpop_proof, or use_dpop_nonce (§9)
        return _dpop_challenge(exc.error, str(exc), row, f"proof_{exc.reason}" if exc.audited else None)
    if not tokens.sender_ok(row, jkt):
        return _dpop_challenge("invalid_dpop_proof", "The DPoP proof is not signed with the key the token is bound to.",
                               row, "proof_key_mismatch")
    return _userinfo_response(_userinfo_claims(row, proof_jkt=jkt), dpop_scheme=True)


def _userinfo_response(claims: dict | None, dpop_scheme: bool = False) -> Response:
    if claims is None:
        description = "The access token is invalid, expired or revoked."
        return _dpop_challenge("invalid_token", description) if dpop_scheme else _bearer_challenge("invalid_token")
    resp = jsonify(claims)
    resp.headers.update(NO_STORE)
    return resp


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo():
    """OIDC Core §5.3: claims for the scopes of a valid access token with ``openid``: a Bearer token
    (RFC 6750), or a DPoP-bound one with its proof (RFC 9449 §7.1)."""
    rp = current_app.extensions["idp.resource_protector"]
    if "access_token" in request.values:
        # RFC 6750 §2: we accept the header method only; a token elsewhere (or in two places) is refused.
        return _bearer_challenge("invalid_request")
    scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() == "dpop":
        return _dpop_userinfo(value.strip())
    try:
        row = rp.acquire_token(["openid"]).row
    except OAuth2Error as error:
        return _bearer_challenge(error.error)
    if not tokens.sender_ok(row, None):  # a bound token sent as Bearer (RFC 9449 §7.1, §7.2)
        return _dpop_challenge("invalid_token", "This access token is DPoP-bound: send it as 'Authorization: DPoP' "
                               "with a DPoP proof.", row, "bearer_use_of_bound_token")
    return _userinfo_response(_userinfo_claims(row))


def _userinfo_claims(row, person=None, proof_jkt: str | None = None) -> dict | None:
    """The claims for a valid access token's row presented with the DPoP proof of ``proof_jkt``'s key
    (None: as Bearer), or None if the token is bound and the proof is not by its key
    (``tokens.sender_ok``), or its person or client is gone or inactive. Both paths (the general one
    and ``idp.oauth.lean``) come here."""
    if not tokens.sender_ok(row, proof_jkt):
        return None
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
    accepts, RFC 6750 §3.1 and ``endpoints.AccessTokenValidator``), or None (``idp.oauth.lean``; a
    DPoP-bound token is None here: ``_userinfo_claims`` applies ``tokens.sender_ok``)."""
    from .tokens import find_live_access_with_person

    row, person = find_live_access_with_person(token_value)
    if row is None or "openid" not in row.scope.split():
        return None
    return _userinfo_claims(row, person)
