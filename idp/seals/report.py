"""Verification results and the rules that turn findings into a verdict, in one place for PDF and
CMS, the public page, the API and ``idp seals verify``.

Verdicts (ETSI EN 319 102-1 §5.1.3 uses the same three): ``valid``; ``invalid`` (proven bad: the
bytes changed, the signature does not verify, the certificate was revoked before the signing time,
the chain leads to an untrusted root); ``indeterminate`` (nothing proven bad, but something needed
is missing: no trusted time for a certificate that is now revoked or expired, unknown seal, a
revocation status that cannot be known). Exit codes of ``idp seals verify``: 0, 1, 2.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

VALID, INVALID, INDETERMINATE = "valid", "invalid", "indeterminate"
EXIT_CODES = {VALID: 0, INVALID: 1, INDETERMINATE: 2}
_RANK = {VALID: 0, INDETERMINATE: 1, INVALID: 2}


def N_(message: str) -> str:
    """Marks a message for extraction (one of Babel's default keywords); translated when shown."""
    return message


# code -> English sentence (a msgid: the page translates it); %(name)s are the reason's parameters.
REASONS: dict[str, str] = {
    # the file as a whole
    "file.not_pdf_without_signature": N_("the file is not a PDF; give its detached signature (.p7s) too"),
    "pdf.too_large": N_("The file is larger than %(mib)d MiB, the most this hub verifies."),
    "pdf.not_pdf": N_("The file is not a PDF."),
    "pdf.encrypted": N_("The PDF is encrypted; it cannot be verified."),
    "pdf.damaged": N_("The PDF is damaged and cannot be read."),
    "pdf.damaged_signature_fields": N_("The PDF's signature fields are damaged and cannot be read."),
    "pdf.no_seal": N_("The file has no seal."),
    "cms.not_signed_data": N_("the signature file is CMS but not SignedData"),
    "cms.not_der": N_("the signature file is not a DER CMS signature (RFC 5652)"),
    "cms.not_detached": N_("the signature contains its content; a detached signature (no encapsulated content) "
                           "is expected"),
    "cms.signer_count": N_("the signature must have exactly one signer"),
    # one seal in a PDF
    "pdf.unreadable": N_("The signature cannot be validated: %(detail)s."),
    "pdf.bytes_changed": N_("The signature does not match the document: the signed bytes were changed."),
    "pdf.partial_revision": N_("The document was modified after this seal: the signature does not cover a whole "
                               "revision of the document."),
    "pdf.changed_after": N_("The document was modified after this seal: the document was changed after this "
                            "seal was applied (%(detail)s)."),
    "pdf.fields_changed": N_("The document was modified after this seal: form fields were changed after this "
                             "seal was applied: %(fields)s."),
    "pdf.later_seals": N_("Later seals were added to the document by incremental updates; they leave this "
                          "seal's content unchanged."),
    "pdf.no_timestamp": N_("The seal carries no timestamp, so its signing time is not proven."),
    "pdf.timestamp_invalid": N_("The seal's timestamp does not verify."),
    "pdf.timestamp_untrusted": N_("The seal's timestamp is not from a timestamp authority the hub trusts."),
    "pdf.chain_untrusted": N_("The seal's certificate does not chain to the hub's root CA."),
    "pdf.certificate_indeterminate": N_("The seal's certificate cannot be validated (%(problem)s)."),
    "pdf.certificate_invalid": N_("The seal's certificate is not valid (%(problem)s)."),
    "pdf.unknown_certificate": N_("The signing certificate is not in the hub's records, so its revocation "
                                  "status is unknown."),
    "pdf.not_seal_certificate": N_("The signing certificate is not a seal certificate."),
    # one detached CMS seal
    "cms.unverifiable": N_("the signature cannot be checked: %(detail)s"),
    "cms.digest_mismatch": N_("the file does not match the signature: it was changed after sealing "
                              "(message digest)"),
    "cms.signature_invalid": N_("the signature value does not verify with the seal's certificate"),
    "cms.no_timestamp": N_("no signature timestamp: the signing time is only the signer's claim"),
    "cms.timestamp_imprint": N_("the timestamp does not cover this signature (message imprint mismatch)"),
    "cms.timestamp_invalid": N_("the timestamp's own signature does not verify"),
    "cms.timestamp_untrusted": N_("the timestamp's certificate is not a timestamp authority chaining to the "
                                  "hub's root CA"),
    "cms.tsa_unknown": N_("the timestamp authority is not known to this hub"),
    "cms.chain_untrusted": N_("the seal's certificate does not lead to the hub's root CA"),
    "cms.certificate_expired": N_("the seal's certificate was expired at the signing time"),
    "cms.certificate_not_yet_valid": N_("the seal's certificate was not yet valid at the signing time"),
    "cms.certificate_out_of_bounds": N_("the seal's certificate was not valid at the signing time"),
    "cms.chain_constraints": N_("the certificate chain breaks a constraint (key usage, path length or names)"),
    "cms.chain_indeterminate": N_("the seal's certificate chain cannot be validated (%(problem)s)"),
    "cms.not_registered": N_("the signing certificate is not a seal registered at this hub"),
    # revocation (revocation_verdict), both kinds
    "revoked.no_trusted_time": N_("The seal's certificate was revoked and no trusted time shows the document "
                                  "was sealed before."),
    "revoked.after_sealing": N_("The seal's certificate was revoked on %(date)s UTC, after the document was "
                                "sealed."),
    "revoked.before_sealing": N_("The seal's certificate had been revoked (%(reason)s) on %(date)s UTC, before "
                                 "the document was sealed."),
}


@dataclass(frozen=True)
class Reason:
    """One coded reason; ``params`` are strings and numbers (JSON), shown as they are in every language."""

    code: str
    params: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The English sentence (API, CLI, logs)."""
        template = REASONS[self.code]
        return template % self.params if self.params else template

    def translated(self) -> str:
        """The sentence in the request's language (Flask-Babel)."""
        from flask_babel import gettext

        return gettext(REASONS[self.code], **self.params)


class _Reasons:
    def add_reason(self, code: str | Reason, **params) -> Reason:
        reason = code if isinstance(code, Reason) else Reason(code, params)
        self.reasons.append(reason.text)
        self.coded_reasons.append(reason)
        return reason


def worst(*verdicts: str) -> str:
    return max(verdicts, key=_RANK.__getitem__) if verdicts else INDETERMINATE


@dataclass
class SignatureReport(_Reasons):
    """One signature (one seal application) found in a file."""

    kind: str                                    # pdf | cms
    verdict: str = INDETERMINATE
    reasons: list[str] = field(default_factory=list)     # English sentences: why not valid / what to note
    coded_reasons: list[Reason] = field(default_factory=list)  # the same reasons, coded (REASONS), same order
    seal: dict | None = None                     # {"id", "name", "type", "department", "status"}
    official: str | None = None                  # who applied it, as recorded in the signed data
    signer_subject: str | None = None            # the signing certificate's subject (RFC 4514)
    certificate_serial: str | None = None        # hex
    signing_time: str | None = None              # trusted time (the timestamp's genTime), ISO 8601 UTC
    claimed_time: str | None = None              # the signer's own signingTime, not trusted
    timestamp: dict | None = None                # {"serial", "time", "tsa", "valid"}
    chain_trusted: bool | None = None            # a path to the hub's root
    integrity: bool | None = None                # digest and signature verify
    revocation: dict | None = None               # {"at_signing": "good|revoked|unknown", "now": ..., "reason", "date"}
    covers_whole_file: bool | None = None        # PDF: nothing was added after this signature
    modified_after: str | None = None            # PDF: what changed after this signature, if anything

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class VerificationReport(_Reasons):
    """The whole file: the overall verdict is the worst of its signatures (none found: invalid)."""

    kind: str                                    # pdf | cms
    sha256: str
    signatures: list[SignatureReport] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    coded_reasons: list[Reason] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if not self.signatures:
            return INVALID
        return worst(*(s.verdict for s in self.signatures))

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "kind": self.kind, "sha256": self.sha256, "reasons": list(self.reasons),
                "coded_reasons": [asdict(r) for r in self.coded_reasons],
                "signatures": [s.to_dict() for s in self.signatures]}


def revocation_verdict(*, revoked_at: dt.datetime | None, reason: str | None,
                       invalidity_date: dt.datetime | None, signed_at: dt.datetime | None) -> tuple[str, Reason | None]:
    """The one rule for a signing certificate that may have been revoked since (all times UTC).

    - Not revoked: valid.
    - Revoked, and a trusted timestamp proves the signature existed before the certificate stopped
      being trustworthy: still valid. That moment is the revocation time, except for keyCompromise,
      where it is the compromise date (``invalidity_date``, RFC 5280 §5.3.2) when one was given and
      is earlier: a key known to be compromised earlier makes every signature after that date invalid.
    - Revoked, signed at or after that moment: invalid.
    - Revoked and no trusted time: indeterminate (the signature may be older or newer than the
      revocation; nothing proves which).

    Returns (verdict, the reason to report or None).
    """
    if revoked_at is None:
        return VALID, None
    cutoff = revoked_at
    if reason == "keyCompromise" and invalidity_date is not None and invalidity_date < cutoff:
        cutoff = invalidity_date
    if signed_at is None:
        return INDETERMINATE, Reason("revoked.no_trusted_time")
    if signed_at < cutoff:
        return VALID, Reason("revoked.after_sealing", {"date": f"{cutoff:%Y-%m-%d %H:%M}"})
    return INVALID, Reason("revoked.before_sealing", {"reason": reason or "unspecified",
                                                      "date": f"{cutoff:%Y-%m-%d %H:%M}"})
