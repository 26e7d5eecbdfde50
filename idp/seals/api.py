"""The officials' seal API (``sealctl``): DPoP-bound level-3 tokens only (``oauth.api.dpop_principal``).

- ``GET  /api/seals``                 the seals I may apply now (JSON)
- ``POST /api/seals/<id>/apply``      body: the PDF (``application/pdf``); query ``page``, ``x``, ``y``;
                                       answer: the sealed PDF
- ``POST /api/seals/<id>/sign``       body: any file; answer: a detached CMS SignedData, DER
                                       (``application/pkcs7-signature``, RFC 8551 §3.2.1)

Each answer carries ``Seal-Application: <id>`` (the record). Errors are JSON
``{"error", "error_description"}``, the description in the language of ``Accept-Language`` (``idp.i18n``);
refusals after authentication are 403 and audited.
"""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from flask_babel import gettext as _

from ..errors import DomainError
from ..limits import body_limit
from ..oauth.api import Refused, _challenge, dpop_principal_and_key
from . import apply as applying
from .models import Seal

bp = Blueprint("seal_api", __name__)


def _error(status: int, error: str, description: str):
    resp = jsonify({"error": error, "error_description": description})
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _principal():
    _, person, jkt = dpop_principal_and_key()
    return person, applying.Proof(applying.API, applying.certificate_for_token(person, jkt))


def _seal_json(seal: Seal) -> dict:
    return {"id": seal.id, "name": seal.name, "type": seal.type, "status": seal.status,
            "department": seal.department.code if seal.department else None,
            "department_name": seal.department.name if seal.department else None,
            "certificate_serial": seal.certificate.serial if seal.certificate else None}


def _number(name: str, kind=float):
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    try:
        return kind(raw)
    except ValueError:
        raise DomainError(_("'%(name)s' must be a number.", name=name), code="invalid_request") from None


@bp.get("/api/seals")
def my_seals():
    try:
        person, _ = _principal()
    except Refused as exc:
        return _challenge(exc)
    from . import service
    resp = jsonify({"seals": [_seal_json(s) for s in service.seals_for(person)]})
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _document() -> bytes:
    data = request.get_data(cache=False)
    if not data:
        raise DomainError(_("Send the document as the request body."), code="invalid_request")
    return data


@bp.post("/api/seals/<int:seal_id>/apply")
@body_limit("SEAL_MAX_UPLOAD_BYTES")
def apply_pdf(seal_id: int):
    try:
        person, proof = _principal()
    except Refused as exc:
        return _challenge(exc)
    try:
        page = _number("page", int)
        x, y = _number("x"), _number("y")
        done = applying.apply_pdf(person, seal_id, _document(), proof=proof, page=page, x=x, y=y)
    except DomainError as exc:
        return _error(exc.status, exc.code, exc.message)
    resp = Response(done.output, mimetype="application/pdf")
    resp.headers["Seal-Application"] = str(done.application.id)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/api/seals/<int:seal_id>/sign")
@body_limit("SEAL_MAX_FILE_BYTES")
def sign(seal_id: int):
    try:
        person, proof = _principal()
    except Refused as exc:
        return _challenge(exc)
    try:
        done = applying.sign_file(person, seal_id, _document(), proof=proof)
    except DomainError as exc:
        return _error(exc.status, exc.code, exc.message)
    resp = Response(done.output, mimetype="application/pkcs7-signature")
    resp.headers["Seal-Application"] = str(done.application.id)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/api/seals/verify")
@body_limit("SEAL_MAX_FILE_BYTES")
def verify():
    """Public: multipart ``file`` (and ``signature`` for a detached CMS). 200 with the report whatever
    the verdict; 400 when no file was sent."""
    from .verification import verify as verify_file

    upload = request.files.get("file")
    if upload is None:
        return _error(400, "invalid_request", _("Send the document as the multipart field 'file'."))
    sig = request.files.get("signature")
    report = verify_file(upload.read(), sig.read() if sig is not None else None)
    resp = jsonify(report.to_dict())
    resp.headers["Cache-Control"] = "no-store"
    return resp
