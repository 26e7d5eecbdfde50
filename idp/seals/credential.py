"""What signing with a seal needs, handed from the registry to the PDF and CMS signers."""
from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509


@dataclass(frozen=True)
class SealCredential:
    """A seal's key and certificate, decrypted for one signing operation (never logged or cached)."""

    seal_id: int
    name: str                           # the seal's name, e.g. 本溪市市场监督管理局行政审批专用章
    seal_type: str                      # 审批专用章
    department: str                     # the department's name
    private_key: object                 # a cryptography private key
    certificate: x509.Certificate       # the seal's document-signing certificate
    chain: tuple[x509.Certificate, ...]  # issuing CA first, root last
    image_png: bytes                    # the stamp (transparent PNG)


@dataclass(frozen=True)
class Approver:
    """The official applying the seal, written into the signed data so the file alone says who approved."""

    name: str          # the official's name on record
    username: str
    department: str    # the department's name
    title: str | None = None
