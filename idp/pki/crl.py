"""Certificate revocation lists (RFC 5280 §5), one per hub CA, kept in the database.

A CRL is published again on every revocation (in the revocation's transaction) and whenever less
than half of its lifetime (IDP_PKI_CRL_DAYS) is left, so ``nextUpdate`` is never passed while the
hub runs. Writers take one lock (a PostgreSQL advisory lock, SQLite's write lock), so cRLNumber
(§5.2.3) only grows even when several nodes publish at once. Each node caches the DER by number
and checks the number on every request: any node serves the newest CRL.
"""
from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from flask import current_app
from sqlalchemy import select, text

from ..db import db, transaction, utcnow
from .ca import Authority, CaError, load_authorities
from .models import Certificate, CertificateRevocationList

log = logging.getLogger(__name__)
_LOCK_ID = 0x1D9A5C41


def lock() -> None:
    """Serialise CRL publication and revocation across nodes (inside the caller's transaction)."""
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
    else:
        session.execute(text("UPDATE crl SET number = number WHERE ca_id = ''"))  # takes the write lock


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc)


def build(authority: Authority, ca_key, number: int, revoked: list[Certificate], days: int,
          now: dt.datetime) -> x509.CertificateRevocationList:
    """A v2 CRL with cRLNumber and authorityKeyIdentifier (§5.2.1, §5.2.3), a reasonCode per entry
    except ``unspecified``, which §5.3.1 says to leave out, and an invalidityDate (§5.3.2) where a
    compromise date was given."""
    ski = authority.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(authority.certificate.subject)
               .last_update(_aware(now))
               .next_update(_aware(now + dt.timedelta(days=days)))
               .add_extension(x509.CRLNumber(number), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False))
    for c in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(int(c.serial, 16)).revocation_date(_aware(c.revoked_at))
        if c.revocation_reason and c.revocation_reason != "unspecified":
            entry = entry.add_extension(x509.CRLReason(x509.ReasonFlags(c.revocation_reason)), critical=False)
        if c.invalidity_date is not None:
            entry = entry.add_extension(x509.InvalidityDate(c.invalidity_date), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(ca_key, hashes.SHA256())


def publish(authority: Authority, ca_key) -> CertificateRevocationList:
    """Publish a new CRL for ``authority``; call inside a transaction, after ``lock()``."""
    row = db.session.get(CertificateRevocationList, authority.id, populate_existing=True)
    revoked = db.session.execute(
        select(Certificate).where(Certificate.issuer_ca == authority.id, Certificate.status == "revoked")
        .order_by(Certificate.revoked_at, Certificate.id)).scalars().all()
    now = utcnow().replace(microsecond=0)
    days = current_app.config["PKI_CRL_DAYS"]
    crl = build(authority, ca_key, (row.number + 1) if row else 1, revoked, days, now)
    if row is None:
        row = CertificateRevocationList(ca_id=authority.id)
        db.session.add(row)
    row.number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    row.this_update, row.next_update = now, now + dt.timedelta(days=days)
    row.der = crl.public_bytes(serialization.Encoding.DER)
    db.session.flush()
    return row


def is_due(next_update: dt.datetime | None, now: dt.datetime | None = None) -> bool:
    if next_update is None:
        return True
    half_life = dt.timedelta(days=current_app.config["PKI_CRL_DAYS"]) / 2
    return (now or utcnow()) >= next_update - half_life


def _authority(ca_id: str) -> Authority | None:
    return load_authorities(Path(current_app.config["KEYS_DIR"])).by_id.get(ca_id)


def refresh_if_due(ca_id: str) -> CertificateRevocationList | None:
    """Publish a CRL for ``ca_id`` if it has none or its nextUpdate is near; returns the current one."""
    authority = _authority(ca_id)
    if authority is None:
        return None
    row = db.session.get(CertificateRevocationList, ca_id)
    if row is not None and not is_due(row.next_update):
        return row
    ca_key = authority.private_key(current_app.config["KEYS_PASSPHRASE"])
    with transaction():
        lock()
        row = db.session.get(CertificateRevocationList, ca_id, populate_existing=True)
        if row is None or is_due(row.next_update):  # another node may have just published it
            row = publish(authority, ca_key)
    return row


def current(ca_id: str) -> tuple[int, dt.datetime, bytes] | None:
    """(number, thisUpdate, DER) of the newest CRL of ``ca_id``; None for an unknown CA."""
    head = db.session.execute(select(CertificateRevocationList.number, CertificateRevocationList.next_update)
                              .where(CertificateRevocationList.ca_id == ca_id)).first()
    if head is None or is_due(head.next_update):
        try:
            refresh_if_due(ca_id)
        except CaError as exc:  # e.g. this node cannot open the CA key: serve what there is, loudly
            log.warning("cannot publish a fresh CRL for %s: %s", ca_id, exc)
    cache = current_app.extensions.setdefault("idp.pki.crl_cache", {})
    row = db.session.execute(select(CertificateRevocationList.number, CertificateRevocationList.this_update)
                             .where(CertificateRevocationList.ca_id == ca_id)).first()
    if row is None:
        return None
    hit = cache.get(ca_id)
    if hit is None or hit[0] != row.number:
        fresh = db.session.execute(select(CertificateRevocationList.number, CertificateRevocationList.this_update,
                                          CertificateRevocationList.der)
                                   .where(CertificateRevocationList.ca_id == ca_id)).one()
        hit = cache[ca_id] = (fresh.number, fresh.this_update, fresh.der)
    return hit
