"""A seal on any file: a detached CMS SignedData (RFC 5652 §5) over the file's exact bytes, made and
checked with pyHanko, so ``openssl cms -verify -binary -content FILE -inform DER -in FILE.p7s
-CAfile CHAIN`` accepts it.

What the signature holds: SHA-256; signed attributes contentType, messageDigest, signingTime (the
signer's claim), signingCertificateV2 (RFC 5035 / ESS) and CMSAlgorithmProtection (RFC 6211) as
pyHanko's Signer writes them, plus the approver (below); the hub TSA's timestamp over the signature
value as the unsigned id-aa-signatureTimeStampToken (RFC 3161 Appendix A; CAdES-T, ETSI EN 319 122-1
§5.3); the seal's certificate and the issuing CA (not the root: a verifier brings its own anchor).

The approver — the official who applied the seal — is a signed attribute of our own type under the
ITU-T X.667 UUID arc, ``APPROVER_OID``, a UTF8String such as "张三 (zhangsan), 本溪市市场监督管理局".
CAdES's signer-attributes-v2 (claimedAttributes) describes the *signer*, which here is the seal, not
the person who asked for it; a separate, plainly named attribute says who approved without
pretending to be a role of the seal. Verifiers that do not know it ignore it (RFC 5652 §5.3), and
it is signed, so the file alone tells who approved.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from typing import IO

from asn1crypto import cms, core, keys as asn1_keys
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.ades.asn1_util import register_cms_attribute
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.attributes import CMSAttributeProvider
from pyhanko.sign.signers.pdf_cms import (GenericCMSSignedAttributeProviderSpec, PdfCMSSignedAttributes,
                                          SimpleSigner)
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko_certvalidator.registry import SimpleCertificateStore

from .credential import Approver, SealCredential
from .report import INDETERMINATE, INVALID, VALID, SignatureReport, VerificationReport, revocation_verdict, worst
from .trust import to_asn1

APPROVER_OID = "2.25.139516917906807208229279295975969402464"
APPROVER_ATTRIBUTE = "idp_approver"
DIGEST = "sha256"
CHUNK = 1024 * 1024

register_cms_attribute(APPROVER_OID, APPROVER_ATTRIBUTE, core.UTF8String)
if cms.CMSAttributeType._reverse_map is not None:
    # asn1crypto builds the name → OID map once, at the type's first use; if that was before this
    # import (pyHanko's PDF code, say), add our name to it too.
    cms.CMSAttributeType._reverse_map[APPROVER_ATTRIBUTE] = APPROVER_OID


def approver_text(approver: Approver) -> str:
    """How the approver is written: "name (username), [title, ]department"."""
    parts = [f"{approver.name} ({approver.username})"]
    if approver.title:
        parts.append(approver.title)
    parts.append(approver.department)
    return ", ".join(parts)


class ApproverProvider(CMSAttributeProvider):
    """The approver signed attribute, for any pyHanko signer (CMS here; the PDF signer may add it too)."""

    attribute_type = APPROVER_ATTRIBUTE

    def __init__(self, approver: Approver):
        self.text = approver_text(approver)

    async def build_attr_value(self, dry_run=False) -> core.UTF8String:
        return core.UTF8String(self.text)


class _SealAttributes(GenericCMSSignedAttributeProviderSpec):
    """pyHanko's generic CMS signed attributes, and the approver."""

    def __init__(self, *, approver: Approver, **kw):
        super().__init__(**kw)
        self.approver = approver

    def signed_attr_providers(self, data_digest: bytes, digest_algorithm: str):
        yield from super().signed_attr_providers(data_digest, digest_algorithm)
        yield ApproverProvider(self.approver)


def seal_signer(credential: SealCredential, approver: Approver) -> SimpleSigner:
    """A pyHanko signer for the seal: its key and certificate, the issuing CA to embed (not the root)."""
    der_key = credential.private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption())
    signer = SimpleSigner(signing_cert=to_asn1(credential.certificate),
                          signing_key=asn1_keys.PrivateKeyInfo.load(der_key),
                          cert_registry=SimpleCertificateStore.from_certs([to_asn1(c) for c in credential.chain]),
                          embed_roots=False)
    signer.signed_attr_prov_spec = _SealAttributes(
        approver=approver, attr_settings=PdfCMSSignedAttributes(signing_time=dt.datetime.now(dt.timezone.utc)),
        signing_cert=signer.signing_cert, signature_mechanism=signer.get_signature_mechanism_for_digest,
        timestamper=None)
    return signer


def sign_detached(data: bytes | IO[bytes], credential: SealCredential, approver: Approver, *,
                  timestamper: TimeStamper) -> bytes:
    """The DER ContentInfo of a detached SignedData over ``data`` (bytes, or a binary stream read once
    in chunks), with the signature timestamp from ``timestamper`` (normally ``tsa.hub_timestamper()``;
    it records its serial in its own transaction, so call this outside other transactions)."""
    signer = seal_signer(credential, approver)
    signed = asyncio.run(signer.async_sign_general_data(data, DIGEST, detached=True, timestamper=timestamper,
                                                        chunk_size=CHUNK))
    return signed.dump()


def timestamp_serial(signature: bytes) -> str | None:
    """The serial (lower-case hex) of the signature timestamp in a DER signature we made, for the
    application record."""
    signer_info = cms.ContentInfo.load(signature)["content"]["signer_infos"][0]
    for attr in signer_info["unsigned_attrs"] or ():
        if attr["type"].native == "signature_time_stamp_token":
            info = attr["values"][0]["content"]["encap_content_info"]["content"].parsed
            return format(info["serial_number"].native, "x")
    return None


def sha256_of(data: bytes | IO[bytes]) -> str:
    if isinstance(data, (bytes, bytearray)):
        return hashlib.sha256(data).hexdigest()
    h = hashlib.sha256()
    while chunk := data.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()


# -- verification -------------------------------------------------------------------------------------

_CHAIN_PROBLEMS = {  # pyHanko's AdES sub-indication → (verdict, reason code); report.py's rules
    AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND: (INVALID, "cms.chain_untrusted"),
    AdESIndeterminate.EXPIRED: (INDETERMINATE, "cms.certificate_expired"),
    AdESIndeterminate.NOT_YET_VALID: (INDETERMINATE, "cms.certificate_not_yet_valid"),
    AdESIndeterminate.OUT_OF_BOUNDS_NO_POE: (INDETERMINATE, "cms.certificate_out_of_bounds"),
    AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE: (INVALID, "cms.chain_constraints"),
}


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Database times are naive UTC; pyHanko's are aware."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def _iso(value: dt.datetime | None) -> str | None:
    return _utc(value).isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


def _revocation(row) -> dict:
    revoked = row is not None and row.status == "revoked"
    return {"revoked_at": _utc(row.revoked_at) if revoked else None,
            "reason": row.revocation_reason if revoked else None,
            "invalidity_date": _utc(row.invalidity_date) if revoked else None}


def _claimed_gen_time(signer_info: cms.SignerInfo) -> dt.datetime | None:
    """The signature timestamp's genTime, unverified: only chooses the moment to validate paths at."""
    try:
        for attr in signer_info["unsigned_attrs"] or ():
            if attr["type"].native == "signature_time_stamp_token":
                return attr["values"][0]["content"]["encap_content_info"]["content"].parsed["gen_time"].native
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return None


def _approver_of(signer_info: cms.SignerInfo) -> str | None:
    for attr in signer_info["signed_attrs"] or ():
        if attr["type"].native == APPROVER_ATTRIBUTE:
            return attr["values"][0].native
    return None


def _parse(signature: bytes) -> tuple[cms.SignedData | None, str | None]:
    """The SignedData of a detached signature with one signer, or why not."""
    try:
        info = cms.ContentInfo.load(signature, strict=True)
        if info["content_type"].native != "signed_data":
            return None, "cms.not_signed_data"
        signed_data = info["content"]
        # The parts read before pyHanko's validation (which parses the rest itself; ``.native`` on the
        # whole structure is needlessly slow).
        embedded = signed_data["encap_content_info"]["content"]
        signers = len(signed_data["signer_infos"])
    except Exception:  # asn1crypto raises ValueError, TypeError, … on bad DER
        return None, "cms.not_der"
    if embedded is not core.VOID and embedded.native is not None:
        return None, "cms.not_detached"
    if signers != 1:
        return None, "cms.signer_count"
    return signed_data, None


def _timestamp(sig: SignatureReport, status) -> dt.datetime | None:
    """The trusted signing time: the signature timestamp, if pyHanko finds it intact, signed by a TSA
    certificate with the timeStamping EKU chaining to the hub's root, over this signature value
    (RFC 3161 §2.4.2, message imprint), and the TSA's certificate was not revoked before it."""
    ts = status.timestamp_validity
    if ts is None:
        sig.add_reason("cms.no_timestamp")
        return None
    from . import trust

    tsa_cert = trust.from_asn1(ts.signing_cert)
    info = {"serial": None, "time": _iso(ts.timestamp), "tsa": tsa_cert.subject.rfc4514_string(), "valid": False}
    sig.timestamp = info
    if not ts.intact:
        sig.add_reason("cms.timestamp_imprint")
        return None
    if not ts.valid:
        sig.add_reason("cms.timestamp_invalid")
        return None
    if not ts.trusted:
        sig.add_reason("cms.timestamp_untrusted")
        return None
    row = trust.certificate_record(tsa_cert)
    verdict, why = revocation_verdict(**_revocation(row), signed_at=_utc(ts.timestamp))
    if row is None or row.usage != "tsa" or verdict != VALID:
        sig.add_reason(why or "cms.tsa_unknown")
        return None
    info["valid"] = True
    return _utc(ts.timestamp)


def verify_detached(data: bytes | IO[bytes], signature: bytes) -> VerificationReport:
    """Check a detached CMS seal on ``data`` (bytes, or a seekable binary stream): integrity, chain to
    the hub's root, the timestamp, the seal and its department, revocation at the signing time and
    now (``report.revocation_verdict``), and the approver. Verdicts as in ``report``'s docstring."""
    from . import trust

    report = VerificationReport(kind="cms", sha256=sha256_of(data))
    if not isinstance(data, (bytes, bytearray)):
        data.seek(0)
    signed_data, problem = _parse(signature)
    if signed_data is None:
        report.add_reason(problem)
        return report
    signer_info = signed_data["signer_infos"][0]
    sig = SignatureReport(kind="cms")
    report.signatures.append(sig)
    moment = _claimed_gen_time(signer_info)
    try:
        status = asyncio.run(async_validate_detached_cms(
            data, signed_data, signer_validation_context=trust.validation_context(moment=moment),
            ts_validation_context=trust.validation_context(moment=moment), chunk_size=CHUNK))
    except (ValueError, TypeError, KeyError) as exc:  # pyHanko's validation errors are ValueErrors
        sig.verdict, sig.integrity = INVALID, False
        sig.add_reason("cms.unverifiable", detail=str(getattr(exc, "failure_message", None) or exc))
        return report
    cert = trust.from_asn1(status.signing_cert)
    sig.signer_subject = cert.subject.rfc4514_string()
    sig.certificate_serial = format(cert.serial_number, "x")
    sig.official = _approver_of(signer_info)
    sig.claimed_time = _iso(status.signer_reported_dt)
    sig.integrity = bool(status.intact and status.valid)
    verdicts = []
    if not status.intact:
        verdicts.append(INVALID)
        sig.add_reason("cms.digest_mismatch")
    elif not status.valid:
        verdicts.append(INVALID)
        sig.add_reason("cms.signature_invalid")
    signed_at = _timestamp(sig, status) if sig.integrity else None
    if sig.timestamp is not None:
        sig.timestamp["serial"] = timestamp_serial(signature)
    sig.signing_time = _iso(signed_at)
    if sig.integrity:
        sig.chain_trusted = bool(status.trusted)
        if not status.trusted:
            verdict, code = _CHAIN_PROBLEMS.get(status.trust_problem_indic, (INDETERMINATE, None))
            verdicts.append(verdict)
            if code:
                sig.add_reason(code)
            else:
                sig.add_reason("cms.chain_indeterminate", problem=str(status.trust_problem_indic))
        if sig.timestamp is not None and not sig.timestamp["valid"]:
            verdicts.append(INDETERMINATE)
    seal, row = trust.seal_for(cert)
    if seal is None:
        verdicts.append(INDETERMINATE)
        sig.add_reason("cms.not_registered")
    else:
        sig.seal = {"id": seal.id, "name": seal.name, "type": seal.type, "department": seal.department.name,
                    "status": seal.status}
        revocation = _revocation(row)
        verdict, why = revocation_verdict(**revocation, signed_at=signed_at)
        revoked_at = revocation["revoked_at"]
        at_signing = "good"
        if revoked_at is not None:
            at_signing = {VALID: "good", INVALID: "revoked", INDETERMINATE: "unknown"}[verdict]
        sig.revocation = {"at_signing": at_signing, "now": "revoked" if revoked_at else "good",
                          "reason": revocation["reason"], "date": _iso(revoked_at)}
        verdicts.append(verdict)
        if why:
            sig.add_reason(why)
    sig.verdict = worst(*verdicts) if verdicts else VALID
    return report
