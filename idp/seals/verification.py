"""One entry point for verifying a file, used by the public page, the public API and
``idp seals verify``: a PDF with embedded seals, or any file with its detached CMS signature."""
from __future__ import annotations

import hashlib

from .report import VerificationReport

PDF_MAGIC = b"%PDF-"


def looks_like_pdf(data: bytes) -> bool:
    """PDF 2.0 (ISO 32000-2 §7.5.2) lets the header sit within the first 1024 bytes."""
    return PDF_MAGIC in data[:1024]


def verify(data: bytes, signature: bytes | None = None) -> VerificationReport:
    if signature is not None:
        from .cms import verify_detached
        return verify_detached(data, signature)
    if looks_like_pdf(data):
        from .pdf import verify_pdf
        return verify_pdf(data)
    report = VerificationReport(kind="cms", sha256=hashlib.sha256(data).hexdigest())
    report.add_reason("file.not_pdf_without_signature")
    report.signatures = []
    return report

