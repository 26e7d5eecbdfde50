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


def worst(*verdicts: str) -> str:
    return max(verdicts, key=_RANK.__getitem__) if verdicts else INDETERMINATE


@dataclass
class SignatureReport:
    """One signature (one seal application) found in a file."""

    kind: str                                    # pdf | cms
    verdict: str = INDETERMINATE
    reasons: list[str] = field(default_factory=list)     # English sentences: why not valid / what to note
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
class VerificationReport:
    """The whole file: the overall verdict is the worst of its signatures (none found: invalid)."""

    kind: str                                    # pdf | cms
    sha256: str
    signatures: list[SignatureReport] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

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
                "signatures": [s.to_dict() for s in self.signatures]}


def revocation_verdict(*, revoked_at: dt.datetime | None, reason: str | None,
                       invalidity_date: dt.datetime | None, signed_at: dt.datetime | None) -> tuple[str, str | None]:
    """The one rule for a signing certificate that may have been revoked since (all times UTC).

    - Not revoked: valid.
    - Revoked, and a trusted timestamp proves the signature existed before the certificate stopped
      being trustworthy: still valid. That moment is the revocation time, except for keyCompromise,
      where it is the compromise date (``invalidity_date``, RFC 5280 §5.3.2) when one was given and
      is earlier: a key known to be compromised earlier makes every signature after that date invalid.
    - Revoked, signed at or after that moment: invalid.
    - Revoked and no trusted time: indeterminate (the signature may be older or newer than the
      revocation; nothing proves which).

    Returns (verdict, an English sentence or None).
    """
    if revoked_at is None:
        return VALID, None
    cutoff = revoked_at
    if reason == "keyCompromise" and invalidity_date is not None and invalidity_date < cutoff:
        cutoff = invalidity_date
    if signed_at is None:
        return INDETERMINATE, "the seal's certificate was revoked and no trusted time shows the document was sealed before"
    if signed_at < cutoff:
        return VALID, f"the seal's certificate was revoked on {cutoff:%Y-%m-%d %H:%M} UTC, after the document was sealed"
    return INVALID, f"the seal's certificate had been revoked ({reason or 'unspecified'}) on {cutoff:%Y-%m-%d %H:%M} UTC, before the document was sealed"
