"""Where relying parties find the CA's certificates and CRLs: the URLs named in every certificate's
CRL distribution point and authority information access (RFC 5280 §4.2.1.13, §4.2.2.1)."""
from __future__ import annotations

import re

from cryptography.hazmat.primitives import serialization
from flask import Blueprint, make_response, request
from flask_babel import gettext as _

from ..errors import NotFound
from . import crl
from .ca import CaError

bp = Blueprint("pki", __name__)
CA_ID = re.compile(r"^[a-z]+-[0-9a-f]{16}$")


def _authority(ca_id: str):
    from .service import authorities

    if not CA_ID.match(ca_id):
        raise NotFound(_("No such certificate authority."))
    try:
        authority = authorities().by_id.get(ca_id)
    except CaError:
        authority = None
    if authority is None:
        raise NotFound(_("No such certificate authority."))
    return authority


@bp.get("/pki/crl/<ca_id>.crl")
def crl_der(ca_id):
    """The CA's current CRL, DER (RFC 5280 §4.2.1.13: ``application/pkix-crl``, RFC 2585 §4.2).

    Revalidated on every use (``no-cache`` + ETag by cRLNumber), so a revocation is seen at once."""
    _authority(ca_id)
    found = crl.current(ca_id)
    if found is None:
        raise NotFound(_("No such certificate authority."))
    number, this_update, der = found
    resp = make_response(der)
    resp.headers["Content-Type"] = "application/pkix-crl"
    resp.headers["Cache-Control"] = "public, no-cache"
    resp.set_etag(f"crl-{ca_id}-{number}")
    resp.last_modified = this_update
    return resp.make_conditional(request)


@bp.get("/pki/ca/<ca_id>.crt")
def ca_certificate(ca_id):
    """The CA certificate, DER (``application/pkix-cert``), as caIssuers promises (RFC 5280 §4.2.2.1)."""
    authority = _authority(ca_id)
    resp = make_response(authority.certificate.public_bytes(serialization.Encoding.DER))
    resp.headers["Content-Type"] = "application/pkix-cert"
    resp.headers["Cache-Control"] = "public, max-age=86400"
    return resp
