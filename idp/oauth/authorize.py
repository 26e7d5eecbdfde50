"""The authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2), as a readable list of checks.

Errors about the client or redirect URI are shown as a page, never redirected (RFC 6749
§4.1.2.1); every other error goes back to the client with ``state`` and ``iss`` (RFC 9207).
"""
from __future__ import annotations

import re
import time
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import (AccessDeniedError, InvalidRequestError, OAuth2Error,
                                           UnsupportedResponseTypeError)
from authlib.oidc.core.errors import (ConsentRequiredError, LoginRequiredError, RegistrationNotSupportedError,
                                      RequestNotSupportedError, RequestURINotSupportedError)
from flask import Response, current_app, request, session
from flask_babel import lazy_gettext as _l

from ..db import epoch, transaction
from ..authn.views import login_redirect
from ..errors import DomainError, require_csrf_token
from ..sessions.current import current_session
from . import acr, acting, clients, consent, par
from .tokens import Principal

PROMPTS = {"none", "login", "consent", "select_account"}
# Parameters whose repetition is an error (RFC 6749 §3.1); the consent form adds its own fields.
FORM_FIELDS = {"csrf_token", "decision", "act_as", consent.SENSITIVE_FIELD}


def _server():
    return current_app.extensions["idp.authorization_server"]


def _with_iss(resp: Response) -> Response:
    if resp.location:
        resp.location = add_params_to_uri(resp.location, [("iss", current_app.config["ISSUER"])])
    return resp


def _redirect_error(error: OAuth2Error, redirect_uri: str, state: str | None) -> Response:
    error.redirect_uri, error.state = redirect_uri, state
    return _with_iss(_server().handle_error_response(None, error))


def _self_url() -> str:
    """This request as a path on our issuer, for coming back after login (never from Host): built
    only for a page or a redirect that needs it, not for the common answer with a code. A pushed
    request comes back as its ``request_uri``, never as its parameters (RFC 9126 §4)."""
    if (pushed := par.current()) is not None:
        return "/authorize?" + urlencode({"client_id": pushed.client_id, "request_uri": pushed.uri})
    params = [(k, v) for k in request.values for v in request.values.getlist(k) if k not in FORM_FIELDS]
    return "/authorize?" + urlencode(params)


def check_client_and_redirect(params, client) -> str:
    """The registered ``redirect_uri`` of a known client (RFC 6749 §3.1.2.3: exact match), or a
    ``DomainError`` (``invalid_request``): the errors that must not be redirected (§4.1.2.1)."""
    redirect_uri = params.get("redirect_uri")
    if len(params.getlist("client_id")) > 1 or len(params.getlist("redirect_uri")) > 1:
        raise DomainError(_l("The request repeats client_id or redirect_uri."), code="invalid_request")
    if not redirect_uri or not client.check_redirect_uri(redirect_uri):
        raise DomainError(_l("The redirect_uri is missing or not registered for this client."),
                          code="invalid_request")
    return redirect_uri


def state_too_long(params) -> bool:
    state = params.get("state")
    return state is not None and len(state) > 1024


def check_request(params, client) -> tuple[set[str], int | None, acr.Requirement]:
    """The authorization request's own checks, those that need no person (RFC 6749 §3.1, §4.1.1; OIDC
    Core §3.1.2.1-2): the authorization endpoint runs them on every request, the PAR endpoint on what
    a client pushes (RFC 9126 §2.1), so both refuse the same requests. Returns the prompts, max_age
    and the assurance requirement; raises the first failure as an ``OAuth2Error``."""
    repeated = sorted(k for k in params if k not in FORM_FIELDS and len(params.getlist(k)) > 1)
    if repeated:
        raise InvalidRequestError("Parameters must not be repeated (RFC 6749 section 3.1).")
    if params.get("response_type") != "code":
        raise UnsupportedResponseTypeError("", description="Only response_type=code is supported.")
    if params.get("response_mode") not in (None, "query"):
        raise InvalidRequestError("Only response_mode=query is supported.")
    if "request" in params:
        raise RequestNotSupportedError()
    if "request_uri" in params:  # only a pushed request's, resolved before these checks (par.resolve)
        raise RequestURINotSupportedError(description="Only a request_uri from the pushed authorization "
                                                      "request endpoint is accepted, and it is not pushed itself.")
    if "registration" in params:
        raise RegistrationNotSupportedError()
    prompts = set(params.get("prompt", "").split())
    if not prompts <= PROMPTS:
        raise InvalidRequestError("Unsupported 'prompt' value.")
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other values.")
    max_age = params.get("max_age")
    if max_age is not None:
        if not re.fullmatch(r"[0-9]{1,9}", max_age):
            raise InvalidRequestError("'max_age' must be a non-negative integer.")
        max_age = int(max_age)
    for name, limit in (("nonce", 255), ("scope", 512), ("login_hint", 64), ("code_challenge", 128)):
        if len(params.get(name) or "") > limit:
            raise InvalidRequestError(f"'{name}' is too long.")
    if (jkt := params.get("dpop_jkt")) is not None and not re.fullmatch(r"[A-Za-z0-9_-]{43}", jkt):
        # RFC 9449 §10: a JWK SHA-256 thumbprint (RFC 7638), base64url without padding.
        raise InvalidRequestError("'dpop_jkt' must be a base64url SHA-256 JWK thumbprint.")
    return prompts, max_age, acr.requirement_of(params, client)  # claims (OIDC Core §5.5), acr_values, policy


def authorize():
    # RFC 9126 §4: a pushed request's reference; any other request_uri (a request object by reference,
    # RFC 9101) is not supported, which ``check_request`` says to the client.
    pushed = par.resolve(request) if par.is_reference(request.values.get("request_uri")) else None
    params = request.values
    client = clients.get_client(params.get("client_id"))
    if client is None:
        raise DomainError(_l("Unknown client: the client_id is missing or not registered."), code="invalid_client")
    redirect_uri = check_client_and_redirect(params, client)
    if state_too_long(params):
        return _redirect_error(InvalidRequestError("'state' is too long."), redirect_uri, None)
    state = params.get("state")

    def fail(error: OAuth2Error) -> Response:
        return _redirect_error(error, redirect_uri, state)

    if pushed is None and client.require_pushed_authorization_requests:
        return fail(InvalidRequestError("This client must push its authorization requests to the pushed "
                                        "authorization request endpoint (RFC 9126 section 4)."))
    try:
        prompts, max_age, requirement = check_request(params, client)
    except OAuth2Error as error:
        return fail(error)

    principal = _authenticated_principal(prompts, max_age)
    try:
        grant = _server().get_consent_grant(end_user=principal)
    except OAuth2Error as error:
        return fail(error)

    if principal is None:
        if "none" in prompts:
            return fail(LoginRequiredError())
        return login_redirect(_self_url(), params.get("login_hint"))
    if (step_up := acr.enforce(requirement, principal, client, prompts, fail, _self_url)) is not None:
        return step_up
    principal.claims_request = requirement.claims_request

    scopes = consent.effective_scopes(grant.request.scope, params.get("prompt"))
    if (page := acting.choose(client, principal, scopes, prompts, action=_self_url, fail=fail)) is not None:
        return page
    if consent.required(principal, client, scopes, prompts):
        if "none" in prompts:
            return fail(ConsentRequiredError())
        decision = request.form.get("decision") if request.method == "POST" else None
        if decision is None:
            return Response(consent.render_page(client, scopes, principal, action=_self_url()))
        require_csrf_token(request.form.get("csrf_token"),
                           _l("The page has expired. Start again from the department site."))
        if decision != "allow":
            consent.record_denial(principal.person, client)
            return fail(AccessDeniedError())
        scopes = consent.grant(principal, client, scopes,
                               sensitive_allowed=request.form.getlist(consent.SENSITIVE_FIELD))
    else:
        scopes = consent.without_sensitive(scopes)
    principal.granted_scopes = scopes  # what the code grants: a sensitive scope only with its consent

    session.pop("fresh_sid", None)  # a fresh login satisfies one authorization request
    with transaction():
        if pushed is not None and not par.consume(pushed):  # one code per pushed request (RFC 9126 §4)
            return fail(InvalidRequestError("This pushed authorization request has already been used."))
        return _server().create_authorization_response(grant.request, grant_user=principal, grant=grant)


def _authenticated_principal(prompts: set[str], max_age: int | None) -> Principal | None:
    """The signed-in person, unless this request needs a fresh login (prompt=login, max_age)."""
    s = current_session()
    if s is None:
        return None
    fresh = session.get("fresh_sid") == s.sid
    if "login" in prompts and not fresh:
        return None
    if max_age is not None and not fresh and time.time() - epoch(s.auth_time) > max_age:
        return None
    return Principal(person=s.person, session_id=s.id, sid=s.sid, auth_time=s.auth_time, acr=s.acr, amr=list(s.amr or []),
                     representation_id=s.acting_representation_id)


