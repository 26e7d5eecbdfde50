"""A department's seal on a PDF: a visible stamp and a PAdES signature with trusted time (ETSI EN
319 142-1, baseline B-T), and the verification of every seal a PDF carries.

All PDF and CMS work is pyHanko's: the incremental writer (ISO 32000-1 §7.5.6) so earlier
signatures stay intact, ``PdfSigner`` for the signature and its RFC 3161 timestamp, the embedded
signature validator with its coverage and difference analysis for verification.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import secrets
from dataclasses import dataclass

from asn1crypto import cms
from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives import serialization
from flask import current_app
from flask_babel import lazy_gettext as _l
from PIL import Image, UnidentifiedImageError
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.rw_common import find_inherited_value_in_tree
from pyhanko.sign import fields, signers
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.diff_analysis import ModificationLevel, SuspiciousModification
from pyhanko.sign.general import SigningError, find_unique_cms_attribute
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko.stamp.static import StaticContentStamp, StaticStampStyle
from pyhanko_certvalidator.registry import SimpleCertificateStore

from ..errors import DomainError
from . import trust
from .credential import Approver, SealCredential
from .report import (INDETERMINATE, INVALID, VALID, Reason, SignatureReport, VerificationReport, revocation_verdict,
                     worst)

UTC = dt.timezone.utc
MARGIN_PT = 36  # default placement: half an inch in from the lower-right corner


def _max_bytes() -> int:
    return int(current_app.config["SEAL_MAX_UPLOAD_BYTES"])


def _check_size(data: bytes) -> None:
    if len(data) > _max_bytes():
        raise DomainError(_l("The file is too large to seal (at most %(mib)s MiB).", mib=_max_bytes() // 2 ** 20),
                          code="too_large", status=413)


def _open(data: bytes) -> PdfFileReader:
    """A reader on ``data``, or a DomainError saying why it is not a PDF we can work with."""
    # ISO 32000-1 §7.5.2: the header; readers accept it within the first 1024 bytes (Annex H.3).
    if b"%PDF-" not in data[:1024]:
        raise DomainError(_l("The file is not a PDF."), code="not_pdf")
    try:
        reader = PdfFileReader(io.BytesIO(data))
        encrypted = reader.encrypted
        reader.root["/Pages"]  # a catalogue without a page tree is not a document
    except (PdfError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise DomainError(_l("The PDF is damaged and cannot be read."), code="damaged_pdf",
                          detail=f"{type(exc).__name__}: {exc}") from None
    if encrypted:
        raise DomainError(_l("The PDF is encrypted; remove the password protection and try again."),
                          code="encrypted_pdf")
    return reader


def _page_count(reader: PdfFileReader) -> int:
    try:
        return int(reader.root["/Pages"]["/Count"])
    except (PdfError, ValueError, KeyError, TypeError) as exc:
        raise DomainError(_l("The PDF is damaged and cannot be read."), code="damaged_pdf", detail=str(exc)) from None


def _page_index(reader: PdfFileReader, page: int | None) -> tuple[int, int]:
    """(0-based index of ``page``, 1-based, default the last; the page count), or a DomainError."""
    pages = _page_count(reader)
    index = pages - 1 if page is None else page - 1
    if not 0 <= index < pages:
        raise DomainError(_l("Page %(page)s does not exist; the document has %(count)s page(s).",
                             page=page, count=pages), code="page_out_of_range")
    return index, pages


def _box_of(page: generic.DictionaryObject) -> tuple[float, float, float, float]:
    """The page's visible area (CropBox, else MediaBox; both inheritable, ISO 32000-1 §7.7.3.4)."""
    try:
        box = (find_inherited_value_in_tree(page, "/CropBox", "/Parent")
               or find_inherited_value_in_tree(page, "/MediaBox", "/Parent"))
        llx, lly, urx, ury = (float(v) for v in box)
    except (PdfError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DomainError(_l("The PDF is damaged and cannot be read."), code="damaged_pdf", detail=str(exc)) from None
    return min(llx, urx), min(lly, ury), max(llx, urx), max(lly, ury)


def image_size(png: bytes) -> tuple[int, int]:
    """The seal image's width and height in pixels (its header only)."""
    try:
        with Image.open(io.BytesIO(png)) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DomainError(_l("The seal's image cannot be read."), code="seal_image", detail=str(exc)) from None
    if width < 1 or height < 1:
        raise DomainError(_l("The seal's image cannot be read."), code="seal_image", detail="empty image")
    return width, height


def stamp_size(image: tuple[int, int], rotate: int = 0) -> tuple[float, float]:
    """THE rule for the stamp's box: (width, height) in the page's own points, for an image of
    ``image`` (width, height) pixels on a page shown turned clockwise by ``rotate``. As shown the stamp
    stands upright, IDP_SEAL_STAMP_SIZE_PT wide and as high as the image's aspect makes it; on a page
    turned a quarter (90, 270) the shown width runs along the page's own y, so the two swap. The signer
    (``seal_pdf_keeping_signature``) makes the signature widget's /Rect this size, and the sealing page's
    placer draws it (``apply.stamp_boxes``)."""
    shown_w = float(current_app.config["SEAL_STAMP_SIZE_PT"])
    shown_h = shown_w * image[1] / image[0]
    return (shown_h, shown_w) if rotate in (90, 270) else (shown_w, shown_h)


def _walk_pages(reader: PdfFileReader, limit: int) -> list[generic.DictionaryObject]:
    """The first ``limit`` page objects in document order, in one pass over the page tree (ISO 32000-1
    §7.7.3.2; pyHanko's page lookup walks from the root for each page, quadratic for a whole document)."""
    pages: list[generic.DictionaryObject] = []
    seen: set = set()
    stack = [iter([reader.root.raw_get("/Pages")])]
    try:
        while stack and len(pages) < limit:
            kid = next(stack[-1], None)
            if kid is None:
                stack.pop()
                continue
            if isinstance(kid, generic.IndirectObject):
                if kid.reference in seen:
                    raise PdfError("circular reference in the page tree")
                seen.add(kid.reference)
            node = kid.get_object()
            if node.get("/Type") == "/Pages" or "/Kids" in node:
                stack.append(iter(node["/Kids"]))
            else:
                pages.append(node)
    except (PdfError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise DomainError(_l("The PDF is damaged and cannot be read."), code="damaged_pdf", detail=str(exc)) from None
    return pages


def _geometry(page: generic.DictionaryObject, number: int) -> dict:
    llx, lly, urx, ury = _box_of(page)
    return {"page": number, "width": round(urx - llx, 2), "height": round(ury - lly, 2), "rotate": _rotation_of(page)}


def page_geometry(data: bytes, page: int | None = None) -> dict:
    """What the stamp placer on /seals/apply draws for the chosen page (1-based; default the last):
    the visible area's ``width`` and ``height`` in points, in the page's own coordinates (those of the
    typed x and y), and ``rotate``, the clockwise turn a viewer shows it with (/Rotate, inheritable, a
    multiple of 90: ISO 32000-1 §7.7.3.3, Table 30)."""
    _check_size(data)
    reader = _open(data)
    index, pages = _page_index(reader, page)
    return {"pages": pages, **_geometry(_page_object(reader, index), index + 1)}


def document_geometry(data: bytes, page: int | None = None) -> dict:
    """``page_geometry`` of the chosen page, and in ``geometry`` the same for every page, so the placer
    switches pages without sending the file again. Bounded: the first IDP_SEAL_PLACER_MAX_PAGES pages
    (the chosen page added when it lies beyond); only the chosen page when the page tree's /Count and
    its pages disagree (it is then found as the signer finds it)."""
    _check_size(data)
    reader = _open(data)
    index, pages = _page_index(reader, page)
    want = min(pages, int(current_app.config["SEAL_PLACER_MAX_PAGES"]))
    walked = _walk_pages(reader, want)
    geometry = [_geometry(p, n) for n, p in enumerate(walked, start=1)] if len(walked) == want else []
    if index < len(geometry):
        chosen = geometry[index]
    else:
        chosen = _geometry(_page_object(reader, index), index + 1)
        geometry.append(chosen)
    return {"pages": pages, **chosen, "geometry": geometry}


def _page_object(handler: PdfFileReader | IncrementalPdfFileWriter, index: int) -> generic.DictionaryObject:
    try:
        return handler.find_page_for_modification(index)[0].get_object()
    except (PdfError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DomainError(_l("The PDF is damaged and cannot be read."), code="damaged_pdf", detail=str(exc)) from None


def _rotation_of(page: generic.DictionaryObject) -> int:
    """The clockwise turn a viewer shows the page with: /Rotate (inheritable, a multiple of 90; ISO
    32000-1 §7.7.3.3, Table 30) as 0, 90, 180 or 270; anything else counts as 0, as readers do."""
    try:
        rotate = int(find_inherited_value_in_tree(page, "/Rotate", "/Parent") or 0) % 360
    except (PdfError, ValueError, KeyError, IndexError, TypeError):
        return 0
    return rotate if rotate % 90 == 0 else 0


# The appearance's /Matrix turning it counterclockwise by the page's /Rotate (cos, sin, -sin, cos, 0, 0).
_TURN = {90: (0, 1, -1, 0, 0, 0), 180: (-1, 0, 0, -1, 0, 0), 270: (0, -1, 1, 0, 0, 0)}


@dataclass(frozen=True)
class _UprightStampStyle(StaticStampStyle):
    """The seal's image as a stamp that stands upright as the page is shown, on a page with /Rotate too.

    A viewer turns the page and its annotations clockwise by /Rotate; the widget's appearance is drawn
    turned counterclockwise by as much, so the two cancel. ISO 32000-1 §12.5.5 (Algorithm 8.1): the
    appearance's /BBox, transformed by its /Matrix, is fitted to the widget's /Rect, so the form keeps
    the image's own (shown) width and height in its /BBox and the turn is its /Matrix; §12.5.6.19 Table
    189 /MK /R says the same to a viewer that regenerates appearances (as Acrobat writes form fields on
    turned pages)."""

    rotate: int = 0

    def create_stamp(self, writer, box: layout.BoxConstraints, text_params: dict) -> StaticContentStamp:
        if self.rotate in (90, 270):  # the /Rect is the page's; the image is laid out as shown
            box = layout.BoxConstraints(width=box.height, height=box.width)
        return _UprightStamp(writer=writer, style=self, box=box)


class _UprightStamp(StaticContentStamp):
    style: _UprightStampStyle

    def as_form_xobject(self) -> generic.StreamObject:
        xobj = super().as_form_xobject()
        if self.style.rotate in _TURN:
            xobj[generic.pdf_name("/Matrix")] = generic.ArrayObject(
                generic.NumberObject(v) for v in _TURN[self.style.rotate])
        return xobj

    def apply_appearance(self, annot_dict: generic.DictionaryObject) -> None:
        super().apply_appearance(annot_dict)
        if self.style.rotate in _TURN:
            annot_dict[generic.pdf_name("/MK")] = generic.DictionaryObject(
                {generic.pdf_name("/R"): generic.NumberObject(self.style.rotate)})


def _default_corner(rotate: int, page_w: float, page_h: float, w: float, h: float) -> tuple[float, float]:
    """The stamp's lower-left corner (page coordinates) that puts it ``MARGIN_PT`` in from the lower-right
    corner of the page as shown (turned clockwise by ``rotate``); ``w`` × ``h`` is its size on the page."""
    far_x, far_y = page_w - MARGIN_PT - w, page_h - MARGIN_PT - h
    return {0: (far_x, MARGIN_PT), 90: (far_x, far_y), 180: (MARGIN_PT, far_y), 270: (MARGIN_PT, MARGIN_PT)}[rotate]


def _stamp_image(png: bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(png))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DomainError(_l("The seal's image cannot be read."), code="seal_image", detail=str(exc)) from None
    return img.convert("RGBA")  # an alpha channel becomes the image's soft mask: the paper shows through


class _KeepingSigner(signers.SimpleSigner):
    """pyHanko's signer, keeping the CMS it produced for the document (not the dry run that sizes the
    placeholder), so the caller records it without parsing the output PDF again."""

    signed: cms.ContentInfo | None = None

    async def async_sign(self, *args, dry_run=False, **kwargs):
        result = await super().async_sign(*args, dry_run=dry_run, **kwargs)
        if not dry_run:
            self.signed = result
        return result


def _signer(credential: SealCredential) -> _KeepingSigner:
    key_der = credential.private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption())
    return _KeepingSigner(
        signing_cert=trust.to_asn1(credential.certificate),
        signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
        cert_registry=SimpleCertificateStore.from_certs([trust.to_asn1(c) for c in credential.chain]))


def seal_reason(credential: SealCredential, approver: Approver) -> str:
    return f"审批盖章：{credential.name}（经办人：{approver.name}）"


def seal_pdf(data: bytes, credential: SealCredential, approver: Approver, *, timestamper,
             page: int | None = None, x: float | None = None, y: float | None = None) -> bytes:
    """``seal_pdf_keeping_signature``'s sealed PDF."""
    return seal_pdf_keeping_signature(data, credential, approver, timestamper=timestamper, page=page, x=x, y=y)[0]


def seal_pdf_keeping_signature(data: bytes, credential: SealCredential, approver: Approver, *, timestamper,
                               page: int | None = None, x: float | None = None,
                               y: float | None = None) -> tuple[bytes, cms.ContentInfo]:
    """Apply the seal: its image as a visible stamp and a PAdES B-T signature, as an incremental update.

    ``page`` is 1-based (default: the last page); ``x``/``y`` place the stamp's lower-left corner in
    PDF points from the page's lower-left corner, in the page's own coordinates (default: the lower-right
    area as the page is shown). On a page with /Rotate the stamp stands upright as shown
    (``_UprightStampStyle``); there its box on the page is the image's height wide. The signature is
    ETSI.CAdES.detached with SHA-256 (ETSI EN 319 142-1 §6.3), carries the seal certificate and its
    chain, and an RFC 3161 signature timestamp from ``timestamper`` (RFC 3161 §2.4.2; ETSI EN 319
    122-1 §5.3 signature-time-stamp).

    Who approved is recorded in the signature dictionary (ISO 32000-1 §12.8.1, Table 252): /Name is
    the approver's name, /Reason "审批盖章：<seal>（经办人：<approver>）", /Location the approver's
    department. The dictionary lies inside /ByteRange (only /Contents is excluded), so these entries
    are covered by the signature: changing them breaks it.
    """
    _check_size(data)
    reader = _open(data)
    index, _ = _page_index(reader, page)
    writer = IncrementalPdfFileWriter(io.BytesIO(data), prev=reader)
    page_obj = _page_object(writer, index)  # looked up once: its box and its turn
    llx, lly, urx, ury = _box_of(page_obj)
    img = _stamp_image(credential.image_png)
    rotate = _rotation_of(page_obj)
    width, height = stamp_size(img.size, rotate)  # on the page
    shown_w, shown_h = stamp_size(img.size)  # as the page is shown: the image's own layout
    corner = _default_corner(rotate, urx - llx, ury - lly, width, height)
    x = corner[0] if x is None else x
    y = corner[1] if y is None else y
    if x < 0 or y < 0 or x + width > urx - llx or y + height > ury - lly:
        raise DomainError(_l("The stamp (%(w)s × %(h)s pt) at x=%(x)s, y=%(y)s does not fit on the page "
                             "(%(pw)s × %(ph)s pt).", w=round(width), h=round(height), x=round(x), y=round(y),
                             pw=round(urx - llx), ph=round(ury - lly)), code="stamp_off_page")
    field_name = f"Seal{credential.seal_id}-{secrets.token_hex(6)}"  # unique: each seal its own field
    box = (llx + x, lly + y, llx + x + width, lly + y + height)
    style = _UprightStampStyle(
        rotate=rotate,
        background=PdfImage(img, box=layout.BoxConstraints(width=shown_w, height=shown_h)),
        background_opacity=1.0, border_width=0,
        background_layout=layout.SimpleBoxLayoutRule(x_align=layout.AxisAlignment.ALIGN_MID,
                                                     y_align=layout.AxisAlignment.ALIGN_MID))
    meta = signers.PdfSignatureMetadata(
        field_name=field_name, md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES,
        name=approver.name, reason=seal_reason(credential, approver), location=approver.department)
    signer = _signer(credential)
    pdf_signer = signers.PdfSigner(meta, signer, timestamper=timestamper, stamp_style=style,
                                   new_field_spec=fields.SigFieldSpec(sig_field_name=field_name, on_page=index,
                                                                      box=box))
    try:
        output = pdf_signer.sign_pdf(writer).getvalue()
        return output, signer.signed
    except TimestampRequestError as exc:
        raise DomainError(_l("The timestamp authority did not answer; nothing was sealed. Try again later."),
                          code="temporarily_unavailable", status=503, detail=str(exc)) from None
    except SigningError as exc:  # e.g. a certification signature that forbids further changes
        raise DomainError(_l("This PDF cannot be sealed: it does not allow further signatures."),
                          code="not_signable", detail=str(exc)) from None
    except PdfError as exc:
        raise DomainError(_l("The PDF is damaged and cannot be read."), code="damaged_pdf", detail=str(exc)) from None


# --- verification -------------------------------------------------------------------------------

def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """The hub stores naive UTC; pyHanko gives aware times. Compare them as aware UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: dt.datetime | None) -> str | None:
    return _utc(moment).isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


def _tst_serial(embedded) -> str | None:
    """The serial of the signature's timestamp token (RFC 3161 §2.4.2 TSTInfo.serialNumber), hex."""
    try:
        token = find_unique_cms_attribute(embedded.signer_info["unsigned_attrs"], "signature_time_stamp_token")
        info = token["content"]["encap_content_info"]["content"].parsed
        return format(info["serial_number"].native, "x")
    except Exception:  # noqa: BLE001 - absent or malformed: the validator reports the token's state
        return None


async def _validate(embedded, signed_at: dt.datetime | None = None):
    ctx = trust.validation_context(moment=signed_at) if signed_at else trust.validation_context()
    return await async_validate_pdf_signature(embedded, signer_validation_context=ctx,
                                              ts_validation_context=trust.validation_context())


async def _validate_all(signatures) -> list:
    """pyHanko's verdict on each signature; a certificate that has expired since is judged at the
    trusted signing time instead of now (PAdES B-T: ETSI EN 319 102-1 §5.6.2.1, past certificate validation)."""
    results = []
    for embedded in signatures:
        try:
            status = await _validate(embedded)
            ts = status.timestamp_validity
            if not status.trusted and ts is not None and ts.valid and ts.intact and ts.trusted:
                status = await _validate(embedded, signed_at=ts.timestamp)
            results.append(status)
        except Exception as exc:  # noqa: BLE001 - a malformed signature is a finding, not a crash
            results.append(exc)
    return results


_MODIFIED = "The document was modified after this seal: "


def _modification(status, embedded, later_fields: set[str]) -> Reason | None:
    """What changed after this signature, or None when nothing did or only later seals were added."""
    if status.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return None
    if status.coverage != SignatureCoverageLevel.ENTIRE_REVISION:
        return Reason("pdf.partial_revision")
    diff = status.diff_result
    if diff is None or isinstance(diff, SuspiciousModification):
        return Reason("pdf.changed_after", {"detail": str(diff or "unexplained changes")})
    if diff.modification_level > ModificationLevel.FORM_FILLING:
        return Reason("pdf.changed_after", {"detail": diff.modification_level.name.lower()})
    others = sorted(set(diff.changed_form_fields) - later_fields)
    if others:
        return Reason("pdf.fields_changed", {"fields": ", ".join(others)})
    return None


def _seal_summary(seal) -> dict:
    return {"id": seal.id, "name": seal.name, "type": seal.type,
            "department": seal.department.name if seal.department else None, "status": seal.status}


def _report_one(embedded, status, later_fields: set[str]) -> SignatureReport:
    rep = SignatureReport(kind="pdf")
    verdicts = []

    def finding(verdict: str, code: str | Reason, **params) -> None:
        verdicts.append(verdict)
        rep.add_reason(code, **params)

    sig_dict = embedded.sig_object
    rep.official = str(sig_dict["/Name"]) if "/Name" in sig_dict else None
    claimed = embedded.self_reported_timestamp
    rep.claimed_time = _iso(claimed)
    try:
        cert = trust.from_asn1(embedded.signer_cert)
        rep.signer_subject = cert.subject.rfc4514_string()
        rep.certificate_serial = format(cert.serial_number, "x")
    except Exception:  # noqa: BLE001
        cert = None
    if isinstance(status, Exception):
        rep.integrity = False
        finding(INVALID, "pdf.unreadable", detail=str(status))
        rep.verdict = INVALID
        return rep

    rep.integrity = bool(status.intact and status.valid)
    if not rep.integrity:
        finding(INVALID, "pdf.bytes_changed")
    rep.covers_whole_file = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    modified = _modification(status, embedded, later_fields)
    if modified:
        rep.modified_after = modified.text.removeprefix(_MODIFIED).removesuffix(".")
        finding(INVALID, modified)
    elif not rep.covers_whole_file:
        rep.add_reason("pdf.later_seals")

    ts = status.timestamp_validity
    signed_at = None
    if ts is None:
        finding(INDETERMINATE, "pdf.no_timestamp")
    else:
        ts_ok = bool(ts.valid and ts.intact)
        rep.timestamp = {"serial": _tst_serial(embedded), "time": _iso(ts.timestamp),
                         "tsa": trust.from_asn1(ts.signing_cert).subject.rfc4514_string() if ts.signing_cert else None,
                         "valid": ts_ok and bool(ts.trusted)}
        if not ts_ok:
            finding(INVALID, "pdf.timestamp_invalid")
        elif not ts.trusted:
            finding(INDETERMINATE, "pdf.timestamp_untrusted")
        else:
            signed_at = _utc(ts.timestamp)
            rep.signing_time = _iso(signed_at)

    rep.chain_trusted = bool(status.trusted)
    if not status.trusted:
        problem = status.trust_problem_indic
        if problem is None or problem == AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND:
            finding(INVALID, "pdf.chain_untrusted")
        elif isinstance(problem, AdESIndeterminate):  # expired with no trusted time, and the like
            finding(INDETERMINATE, "pdf.certificate_indeterminate", problem=problem.name.lower())
        else:
            finding(INVALID, "pdf.certificate_invalid", problem=problem.name.lower())

    seal, row = trust.seal_for(cert) if cert is not None else (None, None)
    if seal is not None:
        rep.seal = _seal_summary(seal)
    if row is None:
        finding(INDETERMINATE, "pdf.unknown_certificate")
        rep.revocation = {"at_signing": "unknown", "now": "unknown", "reason": None, "date": None}
    elif row.usage != "seal":
        finding(INVALID, "pdf.not_seal_certificate")
    if row is not None:
        verdict, why = revocation_verdict(revoked_at=_utc(row.revoked_at), reason=row.revocation_reason,
                                               invalidity_date=_utc(row.invalidity_date), signed_at=signed_at)
        rep.revocation = {"at_signing": {VALID: "good", INVALID: "revoked"}.get(verdict, "unknown"),
                          "now": "revoked" if row.revoked_at else "good", "reason": row.revocation_reason,
                          "date": _iso(row.revoked_at)}
        if why:
            finding(verdict, why)
    rep.verdict = worst(VALID, *verdicts)
    return rep


def verify_pdf(data: bytes) -> VerificationReport:
    """Every seal in a PDF: integrity, trusted time, chain to the hub's root, seal, approver,
    revocation at signing and now, and changes made after it (ISO 32000-1 §12.8.1; ETSI EN 319 102-1)."""
    report = VerificationReport(kind="pdf", sha256=hashlib.sha256(data).hexdigest())
    if len(data) > _max_bytes():
        report.add_reason("pdf.too_large", mib=_max_bytes() // 2 ** 20)
        return report
    try:
        reader = _open(data)
        signatures = reader.embedded_regular_signatures
    except DomainError as exc:
        report.add_reason({"not_pdf": "pdf.not_pdf", "encrypted_pdf": "pdf.encrypted"}.get(exc.code, "pdf.damaged"))
        return report
    except Exception:  # noqa: BLE001 - pyHanko met something it cannot parse in the signature fields
        report.add_reason("pdf.damaged_signature_fields")
        return report
    if not signatures:
        report.add_reason("pdf.no_seal")
        return report
    statuses = asyncio.run(_validate_all(signatures))
    for embedded, status in zip(signatures, statuses):
        later = {s.field_name for s in signatures if s.signed_revision > embedded.signed_revision}
        report.signatures.append(_report_one(embedded, status, later))
    return report


__all__ = ["seal_pdf", "verify_pdf", "seal_reason", "page_geometry", "document_geometry", "stamp_size"]
