"""External (government) CAs an operator also trusts for officials' certificates.

``IDP_PKI_EXTERNAL_CA_FILE`` is a PEM bundle of their CA certificates (trust anchors). A certificate
from such a CA maps to an official by, in order:

1. its registered SHA-256 fingerprint: a ``Certificate`` row with ``origin = "external"`` (the same
   lookup as for the hub's own certificates, so ``idp pki revoke`` also works on it locally);
2. ``IDP_PKI_EXTERNAL_SUBJECT_ATTRIBUTE``: a subject attribute (name such as ``serialNumber`` or a
   dotted OID) holding the holder's resident ID number, found through the blind index, when that
   person has exactly one active staff membership.

The hub fetches no external CRLs; an external CA's revocations are not seen unless the certificate
is revoked here too. This module is the hook for later work (OCSP/CRL fetching, more mappings).
"""
from __future__ import annotations

import threading
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier
from flask import current_app
from sqlalchemy import select

from ..accounts.models import Official, Person
from ..accounts.officials import active_memberships
from ..db import db

_ATTRIBUTES = {"serialnumber": NameOID.SERIAL_NUMBER, "cn": NameOID.COMMON_NAME, "uid": NameOID.USER_ID,
               "commonname": NameOID.COMMON_NAME}
_cache: dict[str, tuple[int, list[x509.Certificate]]] = {}
_lock = threading.Lock()


class ExternalCaError(Exception):
    pass


def anchors() -> list[x509.Certificate]:
    """The external CA certificates (empty when none are configured), re-read when the file changes."""
    path = current_app.config.get("PKI_EXTERNAL_CA_FILE")
    if not path:
        return []
    p = Path(path)
    try:
        mtime = p.stat().st_mtime_ns
    except FileNotFoundError as exc:
        raise ExternalCaError(f"IDP_PKI_EXTERNAL_CA_FILE {p} does not exist") from exc
    with _lock:
        hit = _cache.get(str(p))
        if hit and hit[0] == mtime:
            return hit[1]
        try:
            certs = x509.load_pem_x509_certificates(p.read_bytes())
        except ValueError as exc:
            raise ExternalCaError(f"IDP_PKI_EXTERNAL_CA_FILE {p} is not a PEM certificate bundle") from exc
        _cache[str(p)] = (mtime, certs)
        return certs


def subject_attribute() -> ObjectIdentifier | None:
    value = current_app.config.get("PKI_EXTERNAL_SUBJECT_ATTRIBUTE")
    if not value:
        return None
    oid = _ATTRIBUTES.get(str(value).lower())
    return oid or ObjectIdentifier(str(value))


def official_by_subject(cert: x509.Certificate) -> tuple[Official | None, str]:
    """The official named by the configured subject attribute, and why not when there is none."""
    from ..accounts.identifiers import InvalidIdentifier, normalize_id_number
    from ..accounts.protection import protector

    oid = subject_attribute()
    if oid is None:
        return None, "fingerprint not registered and no subject attribute mapping configured"
    values = cert.subject.get_attributes_for_oid(oid)
    if len(values) != 1:
        return None, "the mapped subject attribute is absent or repeated"
    try:
        id_number = normalize_id_number(str(values[0].value))
    except InvalidIdentifier:
        return None, "the mapped subject attribute is not a resident ID number"
    person = db.session.execute(select(Person).where(
        Person.id_number_index == protector().blind_index(id_number, "id_number"))).scalar_one_or_none()
    if person is None:
        return None, "no account has this certificate's ID number"
    rows = active_memberships(person.id)
    if len(rows) != 1:
        return None, "the holder has no single active staff membership; register the certificate instead"
    return rows[0][0], ""
