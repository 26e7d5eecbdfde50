"""The hub's timestamp authority over HTTP (RFC 3161 §3.4): public, no login, no CSRF (a protocol
endpoint, not a form). The work is ``tsa.issue_der``; this only frames it. ``tsa`` (and pyHanko, about
half a second to import) is imported on first use, so every ``idp`` command and worker does not pay for it."""
from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from flask import Blueprint, current_app, make_response, render_template, request
from flask_babel import gettext as _

bp = Blueprint("tsa", __name__)
QUERY, REPLY = "application/timestamp-query", "application/timestamp-reply"


def _reply(der: bytes, status: int = 200):
    resp = make_response(der, status)
    resp.headers["Content-Type"] = REPLY
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/tsa")
def timestamp():
    """A DER TimeStampReq in (``application/timestamp-query``), a DER TimeStampResp out
    (``application/timestamp-reply``); refusals are TimeStampResp rejections (RFC 3161 §2.4.2)."""
    from . import tsa

    if request.mimetype != QUERY:
        resp = make_response(_("Send a DER timestamp request with Content-Type %(type)s (RFC 3161 section 3.4).",
                               type=QUERY) + "\n", 415)
        resp.headers["Content-Type"] = "text/plain; charset=utf-8"
        resp.headers["Accept-Post"] = QUERY
        return resp
    limit = current_app.config["TSA_MAX_REQUEST_BYTES"]
    if (request.content_length or 0) > limit:
        return _reply(tsa.rejection_der("bad_request", f"the request is larger than {limit} bytes"), 413)
    body = request.stream.read(limit + 1)  # chunked bodies have no Content-Length: read at most limit+1
    if len(body) > limit:
        return _reply(tsa.rejection_der("bad_request", f"the request is larger than {limit} bytes"), 413)
    return _reply(tsa.issue_der(body))


@bp.get("/tsa")
def about():
    """What the endpoint is and how to use it, with the policy and the TSA's certificate link."""
    from . import tsa

    return render_template("seals/tsa.html", policy=tsa.policy_oid(), query_type=QUERY,
                           issuer=current_app.config["ISSUER"])


@bp.get("/tsa/certificate.pem")
def certificate():
    """The TSA's certificate, then the issuing CA and the root (PEM): ``-untrusted`` and ``-CAfile``
    material for ``openssl ts -verify``."""
    from . import tsa

    resp = make_response(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in tsa.chain()))
    resp.headers["Content-Type"] = "application/pem-certificate-chain"
    resp.headers["Cache-Control"] = "public, max-age=3600"
    return resp
