"""Pushed authorization requests (RFC 9126).

A subsite POSTs its authorization request to ``/par``, authenticated like a token request (§2), and
gets a ``request_uri`` (201, §2.2); the browser then brings only ``client_id`` and ``request_uri`` to
``/authorize`` (§4), so the request's parameters never pass through it and cannot be altered there.

- The pushed request is checked as the authorization endpoint checks every request (the same
  functions: ``authorize.check_client_and_redirect``, ``check_request``, and Authlib's grant checks:
  scope, PKCE, prompt), and refused with the token endpoint's JSON errors (§2.3).
- A ``DPoP`` proof on the push is checked as at the token endpoint, and binds the code to its key as
  a pushed ``dpop_jkt`` would; both, naming different keys, is refused (RFC 9449 §10.1).
- Stored as a row (any node serves the ``/authorize`` that follows), found by the SHA-256 of the
  ``request_uri``'s random part (256 bits), bound to its client (§2.2): another client's
  ``client_id`` finds nothing.
- Lifetime: ``PAR_TTL`` seconds (``expires_in``) to reach ``/authorize``; from the first time a
  browser brings it there, ``PAR_INTERACTION_TTL`` for the person to sign in and consent (the login
  pages come back to ``/authorize`` with the ``request_uri``, never with its parameters), and a
  reload in between works (§4 allows it). It is used up when its code is issued: one code per
  pushed request, claimed by a guarded UPDATE in the transaction that stores the code.
- ``require_pushed_authorization_requests`` (§6, ``idp clients par ID --required``): that client's
  authorization requests without a ``request_uri`` are refused (``invalid_request``, §4).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from flask import Response, current_app, g, jsonify, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from werkzeug.datastructures import CombinedMultiDict, ImmutableMultiDict

from ..db import db, transaction, utcnow
from ..errors import DomainError
from ..i18n import in_english
from .models import PushedRequest

PREFIX = "urn:ietf:params:oauth:request_uri:"  # RFC 9126 §2.2
# Client authentication parameters: for the push itself, not part of the authorization request (§2.1).
AUTH_PARAMS = {"client_secret", "client_assertion", "client_assertion_type"}
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_EXPIRED = _l("This sign-in request has expired or has already been used. Start again from the department site.")


class Pushed:
    """What ``/authorize`` keeps of the pushed request it is serving."""

    def __init__(self, row_id: int, client_id: str, uri: str):
        self.id, self.client_id, self.uri = row_id, client_id, uri


def _digest(uri: str) -> str:
    return hashlib.sha256(uri[len(PREFIX):].encode()).hexdigest()


def _error(error: OAuth2Error) -> Response:
    """§2.3: the token endpoint's error format (RFC 6749 §5.2), never a redirect (Authlib's errors
    from the grant's checks carry the redirect URI)."""
    resp = jsonify({"error": error.error, **({"error_description": error.description} if error.description else {})})
    resp.status_code = error.status_code or 400
    resp.headers.update(NO_STORE)
    return resp


class _Pushing:
    """A truthy stand-in for the person while Authlib checks a pushed request: nobody has signed in
    yet, and its prompt rules (``prompt=none`` without a person is ``login_required``) are for the
    authorization endpoint, which applies them when the browser arrives."""


def push() -> Response:
    """POST /par (RFC 9126 §2)."""
    from . import authorize
    from .grants import token_request_proof

    server = current_app.extensions["idp.authorization_server"]
    oauth_request = server.create_oauth2_request(request)
    if any(len(request.form.getlist(k)) > 1 for k in request.form):
        return _error(InvalidRequestError("Parameters must not be repeated (RFC 6749 section 3.1)."))
    try:
        client = server.authenticate_client(oauth_request, AUTH_METHODS, "par")
    except OAuth2Error as error:
        resp = server.handle_error_response(oauth_request, error)  # 401 invalid_client (RFC 6749 §5.2)
        resp.headers.update(NO_STORE)
        return resp
    oauth_request.client = client
    form = request.form
    if form.get("client_id", client.client_id) != client.client_id:
        return _error(InvalidRequestError("'client_id' is not the client that authenticated."))
    # Without the push's own authentication, and without the hub's consent-form fields (a pushed
    # "decision" decides nothing: /authorize reads those from its own form).
    params = ImmutableMultiDict([(k, v) for k in form for v in form.getlist(k)
                                 if k not in AUTH_PARAMS and k not in authorize.FORM_FIELDS]
                                + ([] if "client_id" in form else [("client_id", client.client_id)]))
    try:
        authorize.check_client_and_redirect(params, client)
    except DomainError as exc:
        return _error(InvalidRequestError(in_english(exc.text)))
    if authorize.state_too_long(params):
        return _error(InvalidRequestError("'state' is too long."))
    try:
        authorize.check_request(params, client)
        server.get_consent_grant(end_user=_Pushing())  # Authlib's checks: scope, PKCE, OpenID Connect
        pushed = dict(params.items())
        if "DPoP" in request.headers:
            pushed["dpop_jkt"] = token_request_proof(
                oauth_request, bound_to=params.get("dpop_jkt"), endpoint="/par",
                mismatch="The DPoP proof's key is not the one named by 'dpop_jkt'.")
    except OAuth2Error as error:
        return _error(error)
    secret = secrets.token_urlsafe(32)
    now, ttl = utcnow(), current_app.config["PAR_TTL"]
    with transaction():
        db.session.add(PushedRequest(uri_digest=_digest(PREFIX + secret), client_id=client.client_id, params=pushed,
                                     created_at=now, expires_at=now + timedelta(seconds=ttl)))
    resp = jsonify({"request_uri": PREFIX + secret, "expires_in": ttl})
    resp.status_code = 201
    resp.headers.update(NO_STORE)
    return resp


def is_reference(value: str | None) -> bool:
    """A ``request_uri`` of the form this hub hands out (RFC 9126 §2.2)."""
    return isinstance(value, str) and value.startswith(PREFIX)


def resolve(req) -> Pushed:
    """RFC 9126 §4: the pushed request behind ``/authorize?client_id=…&request_uri=…``. Its parameters
    become this request's values (with only the hub's own form fields besides: a consent decision), so
    everything after reads them as it reads any request's; the rest of the query is ignored (RFC
    9101 §5). An unknown, expired, used or another client's ``request_uri`` is an error page: there
    is no ``redirect_uri`` to trust yet."""
    from .authorize import FORM_FIELDS

    values = req.values
    uri, client_id = values.get("request_uri") or "", values.get("client_id") or ""
    if len(values.getlist("request_uri")) > 1 or not uri.startswith(PREFIX) or len(uri) > 200:
        raise DomainError(_EXPIRED, code="invalid_request_uri")
    now = utcnow()
    row = db.session.execute(select(PushedRequest).where(PushedRequest.uri_digest == _digest(uri))).scalars().first()
    if (row is None or row.used_at is not None or row.expires_at <= now
            or not hmac.compare_digest(row.client_id.encode(), client_id.encode())):
        raise DomainError(_EXPIRED, code="invalid_request_uri")
    if row.started_at is None:
        with transaction():  # the browser has it now: time to sign in and consent
            db.session.execute(update(PushedRequest).where(PushedRequest.id == row.id, PushedRequest.started_at.is_(None))
                               .values(started_at=now, expires_at=now + timedelta(
                                   seconds=current_app.config["PAR_INTERACTION_TTL"])))
    # What the authorization endpoint and Authlib read (``request.values``); the query itself stays
    # as it came, so the page's own links (the language switch) keep only the reference.
    own = ImmutableMultiDict([(k, v) for k in req.form for v in req.form.getlist(k) if k in FORM_FIELDS])
    req.values = CombinedMultiDict([ImmutableMultiDict(row.params), own])
    g.idp_pushed = Pushed(row.id, row.client_id, uri)
    return g.idp_pushed


def current() -> Pushed | None:
    return g.get("idp_pushed")


def consume(pushed: Pushed) -> bool:
    """Use the pushed request up (the caller's transaction, the one storing its code); False if
    another request got there first."""
    return db.session.execute(update(PushedRequest).where(
        PushedRequest.id == pushed.id, PushedRequest.used_at.is_(None)).values(used_at=utcnow())).rowcount == 1
