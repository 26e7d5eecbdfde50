"""Resource endpoints for officials, reachable only with a DPoP-bound level-3 token (RFC 9449 §7).

``dpop_principal()`` is the one check every such endpoint uses (the seal API will too): the
``Authorization: DPoP <token>`` scheme (§7.1; the token used as a plain Bearer token is refused), a
live token issued by us, bound to a key (its row's ``cnf_jkt``, §6.1), a fresh proof by that very key
for this method and URL with ``ath`` = the token's hash (§4.3; with ``DPOP_NONCE=on`` also the hub's
nonce, §9: else 401 ``use_dpop_nonce``), and the sign-in at level 3.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from ..accounts.models import Person
from ..accounts.officials import active_memberships
from ..audit.service import record
from ..config import level_for_acr
from ..db import db
from . import dpop, tokens

bp = Blueprint("official_api", __name__)


class Refused(Exception):
    def __init__(self, error: str, message: str, status: int = 401, reason: str | None = None):
        super().__init__(message)
        self.error, self.status, self.reason = error, status, reason


def _security_event(reason: str, row) -> None:
    record("dpop.refused", actor=f"client:{row.client_id}", outcome="refused", detail={"reason": reason,
                                                                                      "path": request.path})
    db.session.commit()


def dpop_principal(min_level: int = 3):
    """The token's row and person, or Refused (RFC 9449 §7.1, RFC 6750 §3.1 error codes)."""
    row, person, _ = dpop_principal_and_key(min_level)
    return row, person


def dpop_principal_and_key(min_level: int = 3):
    """``dpop_principal``, plus the thumbprint of the key the token is bound to (its row's ``cnf_jkt``,
    RFC 9449 §6.1). Whether the token may be presented with this proof is ``tokens.sender_ok``, the
    one rule for bound tokens (UserInfo's too); a token bound to no key is refused here."""
    scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        row = tokens.find_access_token(value)
        if row is not None and not tokens.sender_ok(row, None):
            _security_event("bearer_use_of_bound_token", row)  # a stolen token tried without its key
        raise Refused("invalid_token", "This endpoint accepts DPoP-bound tokens only (Authorization: DPoP).")
    if scheme.lower() != "dpop" or not value:
        raise Refused("invalid_request", "Send a DPoP-bound access token: 'Authorization: DPoP <token>'.")
    row = tokens.find_access_token(value)
    if row is None:
        raise Refused("invalid_token", "The access token is invalid, expired or revoked.")
    if row.cnf_jkt is None:
        raise Refused("invalid_token", "The access token is not bound to a key.")
    url = current_app.config["ISSUER"] + request.path
    try:
        proof_jkt = dpop.check_proof(request.headers, method=request.method, url=url, access_token=value)
    except dpop.DPoPError as exc:
        if exc.audited:
            _security_event(f"proof_{exc.reason}", row)
        raise Refused(exc.error, str(exc)) from exc  # invalid_dpop_proof, or use_dpop_nonce (§9)
    if not tokens.sender_ok(row, proof_jkt):
        _security_event("proof_key_mismatch", row)
        raise Refused("invalid_dpop_proof", "The DPoP proof is not signed with the key the token is bound to.")
    if (level_for_acr(current_app.config, row.acr or "") or 0) < min_level:
        raise Refused("insufficient_user_authentication", "This needs a sign-in at level 3 (certificate).", 401)
    person = db.session.get(Person, row.person_id) if row.person_id else None
    if person is None or not person.active:
        raise Refused("invalid_token", "The access token is invalid, expired or revoked.")
    return row, person, row.cnf_jkt


def _challenge(exc: Refused):
    resp = jsonify({"error": exc.error, "error_description": str(exc)})
    resp.status_code = exc.status
    resp.headers["WWW-Authenticate"] = dpop.www_authenticate(exc.error, str(exc))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/api/official")
def official():
    """Who am I: the official behind a DPoP-bound level-3 token, their departments, and the acr."""
    try:
        row, person = dpop_principal()
    except Refused as exc:
        return _challenge(exc)
    memberships = [{"department": d.code, "department_name": d.name, "role": o.role}
                   for o, d in active_memberships(person.id)]
    resp = jsonify({"username": person.username, "name": person.name, "official": memberships,
                    "acr": row.acr, "amr": row.amr or [], "client_id": row.client_id})
    resp.headers["Cache-Control"] = "no-store"
    return resp
