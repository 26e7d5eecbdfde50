"""The hub's timestamp authority (RFC 3161, with RFC 5816's ESSCertIDv2): it proves that a seal's
signature existed at a time, and anyone may use it (``POST /tsa``).

Files: ``<keys>/tsa/`` holds ``tsa.json`` (the current TSA's id), ``<id>.crt.pem`` and ``<id>.key.pem``
(PKCS#8, encrypted with IDP_KEYS_PASSPHRASE when set), written under the directory's lock by
``idp init`` so several nodes starting together create one TSA. Its certificate comes from the
hub's issuing CA (``pki.profile.build_tsa_certificate``: critical extendedKeyUsage timeStamping,
RFC 3161 §2.3) and is a ``certificate`` row with ``usage`` = "tsa", so revoking it puts it on the CRL.

Every token is an ``IssuedTimestamp`` row committed before the token leaves (its serial is the
primary key: unique across nodes, RFC 3161 §2.4.2). Tokens are not audited one by one — the TSA is
public and would flood the hash chain — but the rows are kept; creating the TSA is audited.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import algos, cms, core, keys as asn1_keys, tsp, x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from flask import current_app
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes, SimpleSigner
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..audit.service import record
from ..db import db, transaction
from ..keystore.files import load_private_key_pem, locked, private_key_pem, read_json, write_json, write_private
from ..pki import ca, profile
from ..pki.models import Certificate
from ..pki.service import authorities
from .models import IssuedTimestamp

# A fixed OID under the ITU-T X.667 UUID arc (2.25), generated once for this TSA's policy.
DEFAULT_POLICY_OID = "2.25.77094259346348185218404927771064258497"
INDEX = "tsa.json"
HASH_LENGTHS = {"sha256": 32, "sha384": 48, "sha512": 64}  # accepted messageImprint algorithms
SERIAL_BITS = 127  # RFC 3161 §2.4.2: unique per TSA; random, so no node needs to coordinate
ACCURACY_SECONDS = 1  # genTime is truncated to the second


class TimeStampResp(tsp.TimeStampResp):
    """RFC 3161 §2.4.2 ``TimeStampResp``, whose ``timeStampToken`` is OPTIONAL (absent in rejections);
    asn1crypto's schema requires it."""

    _fields = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


class TsaRefusal(Exception):
    """A request the TSA rejects (RFC 3161 §2.4.2 PKIFailureInfo name, English text)."""

    def __init__(self, failure: str, text: str):
        super().__init__(text)
        self.failure, self.text = failure, text


@dataclass(frozen=True)
class Tsa:
    id: str
    certificate: x509.Certificate
    key_path: Path


def tsa_dir(keys_dir) -> Path:
    return Path(keys_dir) / "tsa"


def policy_oid() -> str:
    return current_app.config["TSA_POLICY_OID"]


def create_missing(keys_dir, passphrase: str | None, *, key_type: str, issuing: ca.Authority, ca_key,
                   days: int, base_url: str, organization: str) -> dict | None:
    """Create the TSA's key and certificate if there is none (under the directory's lock)."""
    with locked(tsa_dir(keys_dir)) as d:
        if (d / INDEX).exists():
            return None
        key = ca.generate_key(key_type)
        subject = x509.Name([x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "CN"),
                             x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, organization),
                             x509.NameAttribute(x509.NameOID.COMMON_NAME,
                                                f"{organization} Timestamp Authority {time.gmtime().tm_year}")])
        cert = profile.build_tsa_certificate(issuing=issuing, ca_key=ca_key, public_key=key.public_key(),
                                             subject=subject, days=days, base_url=base_url)
        tsa_id = f"tsa-{format(cert.serial_number, 'x')[:16]}"
        # Files first, index last: the index never names a file that is not there.
        write_private(d / f"{tsa_id}.key.pem", private_key_pem(key, passphrase))
        write_private(d / f"{tsa_id}.crt.pem", cert.public_bytes(serialization.Encoding.PEM))
        entry = {"id": tsa_id, "issuer": issuing.id, "key_type": key_type, "created_at": int(time.time())}
        write_json(d / INDEX, {"current": entry})
        return entry


_cache: dict[str, tuple[int, Tsa, object]] = {}
_cache_lock = threading.Lock()


def _load(keys_dir, passphrase: str | None) -> tuple[Tsa, object]:
    """The current TSA and its private key, re-read when ``tsa.json`` changes."""
    d = tsa_dir(keys_dir)
    try:
        mtime = (d / INDEX).stat().st_mtime_ns
    except FileNotFoundError as exc:
        raise ca.CaError(f"{d / INDEX} is missing; run 'idp init'") from exc
    with _cache_lock:
        hit = _cache.get(str(d))
        if hit and hit[0] == mtime:
            return hit[1], hit[2]
        tsa_id = read_json(d / INDEX)["current"]["id"]
        tsa = Tsa(tsa_id, x509.load_pem_x509_certificate((d / f"{tsa_id}.crt.pem").read_bytes()),
                  d / f"{tsa_id}.key.pem")
        try:
            key = load_private_key_pem(tsa.key_path.read_bytes(), passphrase)
        except (OSError, ValueError) as exc:
            raise ca.CaError(f"TSA {tsa_id}: {exc}") from exc
        _cache[str(d)] = (mtime, tsa, key)
        return tsa, key


def current() -> Tsa:
    cfg = current_app.config
    return _load(cfg["KEYS_DIR"], cfg["KEYS_PASSPHRASE"])[0]


def ensure_tsa(actor: str = "cli") -> list[str]:
    """``idp init``: create the TSA if missing, and make sure its certificate is recorded (a node that
    stopped between the files and the row leaves the row to the next run). Returns the ids created."""
    cfg = current_app.config
    auths = authorities()
    entry = create_missing(cfg["KEYS_DIR"], cfg["KEYS_PASSPHRASE"], key_type=cfg["PKI_KEY_TYPE"],
                           issuing=auths.issuing, ca_key=auths.issuing.private_key(cfg["KEYS_PASSPHRASE"]),
                           days=cfg["TSA_CERT_DAYS"], base_url=cfg["ISSUER"], organization=cfg["PKI_ORGANIZATION"])
    tsa = current()
    cert = tsa.certificate
    if certificate_row(cert) is None:
        try:
            with transaction():
                db.session.add(Certificate(
                    serial=format(cert.serial_number, "x"), issuer_ca=auths.issuing.id, usage="tsa",
                    subject=cert.subject.rfc4514_string(), fingerprint=profile.fingerprint(cert),
                    public_key_sha256=profile.spki_sha256(cert.public_key()), origin="generated",
                    not_before=cert.not_valid_before_utc.replace(tzinfo=None),
                    not_after=cert.not_valid_after_utc.replace(tzinfo=None), status="active",
                    pem=profile.pem_chain(cert, []).decode()))
                db.session.flush()
                record("tsa.created", actor=actor, target=f"certificate:{format(cert.serial_number, 'x')}",
                       detail={"tsa": tsa.id, "ca": auths.issuing.id})
        except IntegrityError:  # another node recorded it first
            pass
    return [entry["id"]] if entry else []


def certificate_row(cert: x509.Certificate) -> Certificate | None:
    return db.session.execute(
        select(Certificate).where(Certificate.fingerprint == profile.fingerprint(cert))).scalar()


def chain() -> list[x509.Certificate]:
    """The TSA's certificate, then the issuing CA and the root (what ``openssl ts -verify`` needs)."""
    return [current().certificate, *(a.certificate for a in authorities().chain())]


def _rejection(failure: str, text: str) -> TimeStampResp:
    return TimeStampResp({"status": tsp.PKIStatusInfo({
        "status": "rejection", "status_string": [text], "fail_info": tsp.PKIFailureInfo({failure})})})


def rejection_der(failure: str, text: str) -> bytes:
    return _rejection(failure, text).dump()


def parse_request(der: bytes) -> tsp.TimeStampReq:
    """A DER TimeStampReq (RFC 3161 §2.4.1), fully parsed; anything else is badDataFormat."""
    try:
        req = tsp.TimeStampReq.load(der, strict=True)
        req.native  # parse every field now, not later inside issue()
        return req
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, KeyError, … on bad DER
        raise TsaRefusal("bad_data_format", "the request is not a DER TimeStampReq (RFC 3161 section 2.4.1)") from exc


def _check(req: tsp.TimeStampReq) -> None:
    """RFC 3161 §2.4.1–2.4.2: the checks a request must pass, each with its PKIFailureInfo."""
    if req["version"].native != "v1":
        raise TsaRefusal("bad_request", "only version 1 requests are accepted")
    imprint = req["message_imprint"]
    algorithm = imprint["hash_algorithm"]["algorithm"].native
    if algorithm not in HASH_LENGTHS:
        raise TsaRefusal("bad_alg", f"hash algorithm {algorithm} is not accepted (sha256, sha384 or sha512)")
    if len(imprint["hashed_message"].native) != HASH_LENGTHS[algorithm]:
        raise TsaRefusal("bad_data_format", f"the message imprint is not a {algorithm} digest (wrong length)")
    requested = req["req_policy"].native
    if requested is not None and requested != policy_oid():
        raise TsaRefusal("unaccepted_policy", f"policy {requested} is not this TSA's ({policy_oid()})")
    if req["extensions"].native:
        raise TsaRefusal("unaccepted_extensions", "no request extensions are supported")


def _signer(tsa: Tsa, key) -> SimpleSigner:
    der_key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    issuing = asn1_x509.Certificate.load(authorities().issuing.certificate.public_bytes(serialization.Encoding.DER))
    return SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(tsa.certificate.public_bytes(serialization.Encoding.DER)),
        signing_key=asn1_keys.PrivateKeyInfo.load(der_key),
        cert_registry=SimpleCertificateStore.from_certs([issuing]), embed_roots=False)


def issue(request: tsp.TimeStampReq) -> TimeStampResp:
    """Answer one request (see :func:`async_issue`)."""
    return asyncio.run(async_issue(request))


async def async_issue(request: tsp.TimeStampReq) -> TimeStampResp:
    """Answer one request (RFC 3161 §2.4.2): a granted TimeStampResp with a token, or a rejection with
    the PKIFailureInfo. The serial is recorded (and committed: do not call this inside another
    use case's transaction) before the token is returned."""
    try:
        _check(request)
    except TsaRefusal as refusal:
        return _rejection(refusal.failure, refusal.text)
    cfg = current_app.config
    tsa, key = _load(cfg["KEYS_DIR"], cfg["KEYS_PASSPHRASE"])
    row = certificate_row(tsa.certificate)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    if row is None or row.status == "revoked" or not (
            tsa.certificate.not_valid_before_utc <= now < tsa.certificate.not_valid_after_utc):
        return _rejection("system_failure", "the timestamp authority's certificate is not usable")
    imprint = request["message_imprint"]
    algorithm = imprint["hash_algorithm"]["algorithm"].native
    serial = secrets.randbits(SERIAL_BITS) | 1 << (SERIAL_BITS - 1)
    info = {
        "version": "v1",
        "policy": policy_oid(),
        "message_imprint": tsp.MessageImprint({
            "hash_algorithm": algos.DigestAlgorithm({"algorithm": algorithm}),
            "hashed_message": imprint["hashed_message"].native}),
        "serial_number": serial,
        "gen_time": now,
        "accuracy": tsp.Accuracy({"seconds": ACCURACY_SECONDS}),
        "tsa": asn1_x509.GeneralName(name="directory_name", value=asn1_x509.Name.load(
            tsa.certificate.subject.public_bytes())),
    }
    if request["nonce"].native is not None:
        info["nonce"] = request["nonce"].native
    tst_info = tsp.TSTInfo(info)
    token = await _signer(tsa, key).async_sign_general_data(
        cms.EncapsulatedContentInfo({"content_type": "tst_info",
                                     "content": core.ParsableOctetString(tst_info.dump())}),
        algorithm, detached=False, signed_attr_settings=PdfCMSSignedAttributes(signing_time=now))
    if not request["cert_req"].native:
        # RFC 3161 §2.4.1: without certReq the certificates field MUST NOT be present (it is outside
        # what the TSA signed, so taking it out keeps the signature).
        signed_data = token["content"]
        signed_data["certificates"] = None
        token = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
    with transaction():
        db.session.add(IssuedTimestamp(serial=format(serial, "x"), at=now.replace(tzinfo=None),
                                       hash_algorithm=algorithm, message_imprint=imprint["hashed_message"].native.hex(),
                                       policy=policy_oid()))
    return TimeStampResp({"status": tsp.PKIStatusInfo({"status": "granted"}), "time_stamp_token": token})


def issue_der(body: bytes) -> bytes:
    """``POST /tsa``: DER request in, DER response out; every refusal is a TimeStampResp."""
    try:
        request = parse_request(body)
    except TsaRefusal as refusal:
        return _rejection(refusal.failure, refusal.text).dump()
    return issue(request).dump()


_dummies: dict[tuple[str, str, str], cms.ContentInfo] = {}


class HubTimeStamper(TimeStamper):
    """pyHanko's TimeStamper, answered in-process by :func:`async_issue` (no HTTP): the PDF and CMS
    signers' signature timestamps (RFC 3161 §2.4; CAdES-T / PAdES-B-T). A refusal raises pyHanko's
    ``TimestampRequestError``.

    pyHanko's PDF signer first estimates the signature's size with a dry run that needs a token
    (``async_dummy_response``: one per instance and digest algorithm, over a dummy digest, with a
    50 % margin on the size). That token is only measured, never embedded, so one per TSA and
    algorithm is kept for the process instead of asking (and recording) a second token per document:
    bench/seals.py: about a fifth of the CPU time of sealing a 1-page PDF."""

    async def async_dummy_response(self, md_algorithm) -> cms.ContentInfo:
        cfg = current_app.config
        key = (str(cfg["KEYS_DIR"]), _load(cfg["KEYS_DIR"], cfg["KEYS_PASSPHRASE"])[0].id, md_algorithm)
        dummy = _dummies.get(key)
        if dummy is None:
            dummy = _dummies[key] = await super().async_dummy_response(md_algorithm)
        else:
            self._register_dummy(md_algorithm, dummy)
        return dummy

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> TimeStampResp:
        return await async_issue(req)


def hub_timestamper() -> HubTimeStamper:
    return HubTimeStamper()
