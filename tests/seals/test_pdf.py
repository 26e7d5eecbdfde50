"""A seal on a PDF: the visible stamp, the PAdES B-T signature (ETSI EN 319 142-1; ISO 32000-1 §12.8)
and its verification, judged by our verifier and by tools not written here (pdfsig from poppler with
NSS, pyHanko's validator, pdftoppm's rendering)."""
from __future__ import annotations

import asyncio
import datetime as dt
import io
import subprocess

import pytest
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from idp.errors import DomainError
from idp.seals.credential import Approver
from idp.seals.pdf import seal_pdf, verify_pdf
from tests.seals.pdfs import make_mixed_pdf, make_pdf, make_seal, make_timestamper, page_text
from tests.seals.tools import nss_db_trusting, tool
from tests.seals.tools import pdfsig as run_pdfsig

APPROVER = Approver(name="王五", username="wangwu", department="本溪市市场监督管理局")
OTHER = Approver(name="赵六", username="zhaoliu", department="本溪市自然资源局")
STAMP = 119  # SEAL_STAMP_SIZE_PT's default; the test image is square


@pytest.fixture
def sealed(seal, tsa):
    return seal_pdf(make_pdf(), seal, APPROVER, timestamper=tsa)


def only(report):
    assert len(report.signatures) == 1, report.to_dict()
    return report.signatures[0]


# --- what the seal puts in the file -------------------------------------------------------------

def test_a_sealed_pdf_verifies_with_seal_official_time_and_chain(sealed, seal):
    """The report names the seal, the department, the approver and the trusted time (RFC 3161 genTime)."""
    report = verify_pdf(sealed)
    sig = only(report)
    assert report.verdict == "valid" and report.exit_code == 0, report.to_dict()
    assert sig.integrity and sig.chain_trusted and sig.covers_whole_file and sig.modified_after is None
    assert sig.official == "王五"
    assert sig.seal == {"id": seal.seal_id, "name": seal.name, "type": "审批专用章",
                        "department": "本溪市市场监督管理局", "status": "active"}
    assert sig.certificate_serial == format(seal.certificate.serial_number, "x")
    assert sig.timestamp["valid"] and sig.timestamp["serial"]
    assert sig.signing_time == sig.timestamp["time"]
    signed = dt.datetime.fromisoformat(sig.signing_time.replace("Z", "+00:00"))
    assert abs(dt.datetime.now(dt.timezone.utc) - signed) < dt.timedelta(minutes=2)
    assert sig.revocation == {"at_signing": "good", "now": "good", "reason": None, "date": None}
    assert sig.reasons == []


def test_the_approver_is_in_the_signed_signature_dictionary(sealed, seal):
    """/Name, /Reason, /Location (ISO 32000-1 §12.8.1 Table 252) lie inside /ByteRange; the CMS is
    ETSI.CAdES.detached with SHA-256 and carries the seal certificate and its chain (EN 319 142-1 §6.3)."""
    reader = PdfFileReader(io.BytesIO(sealed))
    emb = reader.embedded_regular_signatures[0]
    d = emb.sig_object
    assert d["/SubFilter"] == "/ETSI.CAdES.detached"
    assert d["/Name"] == "王五"
    assert d["/Reason"] == f"审批盖章：{seal.name}（经办人：王五）"
    assert d["/Location"] == "本溪市市场监督管理局"
    assert emb.md_algorithm == "sha256"
    subjects = [c.chosen.subject.human_friendly for c in emb.signed_data["certificates"]]
    assert len(subjects) == 1 + len(seal.chain) and any(seal.name in s for s in subjects)  # seal, issuing, root

    # The entry lies in a signed range (only /Contents is left out); changing it breaks the seal.
    entry = b"/Name (\\376\\377s"
    at = sealed.index(entry)
    start1, len1, start2, len2 = emb.byte_range
    assert start1 <= at < start1 + len1 or start2 <= at < start2 + len2
    forged = sealed.replace(entry, b"/Name (\\376\\377t", 1)  # 王五 → another name, same length
    assert PdfFileReader(io.BytesIO(forged)).embedded_regular_signatures[0].sig_object["/Name"] != "王五"
    sig = only(verify_pdf(forged))
    assert sig.verdict == "invalid" and sig.integrity is False, sig.to_dict()


def test_pyhankos_validator_accepts_it_with_a_timestamp(sealed, seal):
    """pyHanko's own validator, anchored at the hub root, sees an intact, trusted PAdES signature with
    a trusted signature timestamp (ETSI EN 319 142-1 B-T)."""
    from pyhanko.sign.validation import async_validate_pdf_signature

    from idp.seals.trust import validation_context

    emb = PdfFileReader(io.BytesIO(sealed)).embedded_regular_signatures[0]
    status = asyncio.run(async_validate_pdf_signature(emb, signer_validation_context=validation_context()))
    assert status.bottom_line and status.intact and status.valid and status.trusted
    assert status.signing_cert.subject.native["common_name"] == seal.name
    ts = status.timestamp_validity
    assert ts is not None and ts.intact and ts.valid and ts.trusted
    assert abs(dt.datetime.now(dt.timezone.utc) - ts.timestamp) < dt.timedelta(minutes=2)


def nss_trusting_the_hub_root(tmp_path) -> str:
    """An NSS database whose only trust anchor is the hub's root (tests/seals/tools.py)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from idp.seals.trust import chain_certificates

    return nss_db_trusting(tmp_path / "nssdb", chain_certificates()[-1].public_bytes(Encoding.PEM))


def pdfsig(path, tmp_path) -> str:
    """poppler's pdfsig, with an NSS database that trusts the hub's root and nothing else."""
    return run_pdfsig(path, nss_trusting_the_hub_root(tmp_path), tmp_path / "home")


def test_pdfsig_reports_the_signature_valid_and_the_seal_as_signer(sealed, seal, tmp_path):
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    out = pdfsig(path, tmp_path)
    assert "Signature #1:" in out and "Signature #2:" not in out, out
    assert "Signature Validation: Signature is Valid." in out, out
    assert f"Signer Certificate Common Name: {seal.name}" in out, out
    assert "OU=本溪市市场监督管理局" in out and "Signature Type: ETSI.CAdES.detached" in out, out
    assert "Signing Hash Algorithm: SHA-256" in out and "Total document signed" in out, out
    assert "Certificate Validation: Certificate is Trusted." in out, out


def render(pdf: bytes, page: int, tmp_path) -> Image.Image:
    """pdftoppm at 72 dpi: one pixel per point."""
    src = tmp_path / "render.pdf"
    src.write_bytes(pdf)
    subprocess.run([tool("pdftoppm"), "-f", str(page), "-l", str(page), "-r", "72", "-png", "-singlefile",
                    str(src), str(tmp_path / "page")], check=True, capture_output=True, timeout=60)
    return Image.open(tmp_path / "page.png").convert("RGB")


def red(px) -> bool:
    r, g, b = px
    return r > 180 and g < 80 and b < 80


def red_pixels(img: Image.Image, box) -> int:
    x0, y0, x1, y1 = box
    return sum(red(img.getpixel((x, y))) for x in range(x0, x1) for y in range(y0, y1))


def test_the_stamp_is_drawn_where_asked_and_the_paper_shows_through(seal, tsa, tmp_path):
    """Rendered by poppler: red where the stamp is, white around it, and white between the ring and
    the centre (the PNG's transparency kept as a soft mask, ISO 32000-1 §11.6.5.2)."""
    x, y = 100, 200
    img = render(seal_pdf(make_pdf(), seal, APPROVER, timestamper=tsa, page=1, x=x, y=y), 1, tmp_path)
    height = img.height  # 842: image rows count from the top, PDF y from the bottom
    box = (x, height - y - STAMP, x + STAMP, height - y)
    assert red_pixels(img, box) > 0.1 * STAMP * STAMP
    assert red_pixels(img, (0, 0, img.width, box[1])) == 0  # nothing red above the stamp
    assert red_pixels(img, (box[2], 0, img.width, height)) == 0  # nor to its right
    cx, cy = x + STAMP // 2, height - y - STAMP // 2
    assert img.getpixel((cx + STAMP // 4, cy)) == (255, 255, 255)  # between ring and star: the paper
    assert red(img.getpixel((cx, cy)))  # the star in the centre


def test_by_default_the_stamp_goes_to_the_lower_right_of_the_last_page(seal, tsa, tmp_path):
    img = render(seal_pdf(make_pdf(3), seal, APPROVER, timestamper=tsa), 3, tmp_path)
    w, h = img.size
    assert red_pixels(img, (w // 2, h // 2, w, h)) > 0.1 * STAMP * STAMP
    assert red_pixels(img, (0, 0, w, h // 2)) + red_pixels(img, (0, 0, w // 2, h)) == 0


def test_a_50_page_pdf_sealed_on_page_50(seal, tsa, tmp_path):
    sealed = seal_pdf(make_pdf(50), seal, APPROVER, timestamper=tsa, page=50, x=60, y=60)
    assert verify_pdf(sealed).verdict == "valid"
    reader = PdfFileReader(io.BytesIO(sealed))
    pages = [reader.find_page_for_modification(i)[0].get_object() for i in range(50)]
    assert [i + 1 for i, p in enumerate(pages) if "/Annots" in p] == [50]  # the stamp's widget, nowhere else
    assert red_pixels(render(sealed, 50, tmp_path), (60, 842 - 60 - STAMP, 60 + STAMP, 842 - 60)) > 0


# --- several seals, changes after sealing -------------------------------------------------------

def test_a_second_seal_keeps_the_first_valid(app, ca, seal, tsa, sealed, tmp_path):
    """Incremental updates (ISO 32000-1 §7.5.6): a later seal, of the same or another department,
    leaves every earlier signature valid; the first is reported as not covering the whole file."""
    other = make_seal(app, ca, name="本溪市自然资源局行政审批专用章",
                      department=("zrzyj", "本溪市自然资源局"))
    twice = seal_pdf(sealed, other, OTHER, timestamper=tsa, page=1, x=60, y=60)
    thrice = seal_pdf(twice, seal, APPROVER, timestamper=tsa, page=1, x=200, y=60)
    assert thrice.startswith(sealed) and thrice.startswith(twice)  # appended, never rewritten
    report = verify_pdf(thrice)
    assert report.verdict == "valid", report.to_dict()
    assert [s.official for s in report.signatures] == ["王五", "赵六", "王五"]
    assert [s.seal["department"] for s in report.signatures] == [
        "本溪市市场监督管理局", "本溪市自然资源局", "本溪市市场监督管理局"]
    assert [s.covers_whole_file for s in report.signatures] == [False, False, True]
    assert all(s.modified_after is None for s in report.signatures)
    names = [e.field_name for e in PdfFileReader(io.BytesIO(thrice)).embedded_regular_signatures]
    assert len(set(names)) == 3
    path = tmp_path / "thrice.pdf"
    path.write_bytes(thrice)
    out = pdfsig(path, tmp_path)
    assert out.count("Signature Validation: Signature is Valid.") == 3, out


def test_one_byte_changed_inside_the_signed_range_is_invalid(sealed):
    """The document digest no longer matches the signed messageDigest (RFC 5652 §11.2)."""
    text = page_text(1)
    assert sealed.count(text) == 1
    forged = sealed.replace(text, b"B" + text[1:])
    report = verify_pdf(forged)
    sig = only(report)
    assert report.verdict == "invalid" and report.exit_code == 1
    assert sig.integrity is False
    assert "The signature does not match the document: the signed bytes were changed." in sig.reasons


def test_page_content_changed_after_sealing_is_reported_modified(sealed):
    """An incremental update that draws on the page is not a later seal: pyHanko's difference
    analysis flags it, and the seal no longer vouches for what the page shows."""
    w = IncrementalPdfFileWriter(io.BytesIO(sealed))
    font = generic.DictionaryObject({generic.pdf_name("/Type"): generic.pdf_name("/Font"),
                                     generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
                                     generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica")})
    resources = generic.DictionaryObject({generic.pdf_name("/Font"): generic.DictionaryObject(
        {generic.pdf_name("/F9"): w.add_object(font)})})
    w.add_stream_to_page(0, w.add_object(generic.StreamObject(stream_data=b"BT /F9 30 Tf 72 500 Td (REFUSED) Tj ET")),
                         resources)
    out = io.BytesIO()
    w.write(out)
    changed = out.getvalue()
    assert changed.startswith(sealed)
    sig = only(verify_pdf(changed))
    assert sig.integrity is True  # the sealed revision itself is intact
    assert sig.verdict == "invalid" and sig.modified_after, sig.to_dict()
    assert any(r.startswith("The document was modified after this seal:") for r in sig.reasons)


def test_a_seal_from_another_ca_is_invalid(app, seal, tsa):
    """A look-alike seal certified by someone else's CA: the signature is intact, but there is no
    path to the hub's root (RFC 5280 §6.1), so the verdict is invalid."""
    import dataclasses

    from tests.pki.conftest import craft

    root, root_key = craft(None, None, ca=True, eku=None, key_usage=None)
    leaf, leaf_key = craft(root, root_key, eku=None, subject=seal.certificate.subject)
    impostor = dataclasses.replace(seal, private_key=leaf_key, certificate=leaf, chain=(root,))
    sig = only(verify_pdf(seal_pdf(make_pdf(), impostor, APPROVER, timestamper=tsa)))
    assert sig.integrity is True and sig.chain_trusted is False and sig.verdict == "invalid", sig.to_dict()
    assert "The seal's certificate does not chain to the hub's root CA." in sig.reasons
    assert sig.seal is None


def _verify_page(client, document: bytes, lang: str) -> str:
    import re

    page = client.get(f"/seals/verify?lang={lang}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    r = client.post("/seals/verify", data={"csrf_token": token, "document": (io.BytesIO(document), "a.pdf")},
                    content_type="multipart/form-data")
    assert r.status_code == 200
    return r.get_data(as_text=True)


def test_the_verification_page_gives_the_reasons_in_the_readers_language(app, client, seal, tsa, sealed):
    """Each reason has a code (report.REASONS); the API keeps the English sentence with the code, and
    the Chinese page shows the Chinese sentence for the code and none of the English ones."""
    import dataclasses

    from tests.pki.conftest import craft

    forged = sealed.replace(page_text(1), b"B" + page_text(1)[1:])
    root, root_key = craft(None, None, ca=True, eku=None, key_usage=None)
    leaf, leaf_key = craft(root, root_key, eku=None, subject=seal.certificate.subject)
    impostor = dataclasses.replace(seal, private_key=leaf_key, certificate=leaf, chain=(root,))
    unknown = seal_pdf(make_pdf(), impostor, APPROVER, timestamper=tsa)

    api = client.post("/api/seals/verify", data={"file": (io.BytesIO(forged), "a.pdf")},
                      content_type="multipart/form-data").json
    [sig] = api["signatures"]
    assert sig["coded_reasons"][0] == {"code": "pdf.bytes_changed", "params": {}}, sig
    assert sig["reasons"][0] == "The signature does not match the document: the signed bytes were changed."
    assert len(sig["reasons"]) == len(sig["coded_reasons"])

    for document, codes, chinese in (
            (forged, {"pdf.bytes_changed"}, "签名与文件不符：签名覆盖的内容已被改动。"),
            (unknown, {"pdf.chain_untrusted", "pdf.unknown_certificate"}, "印章证书无法链接到本平台的根证书。")):
        english = verify_pdf(document).signatures[0].reasons
        assert codes <= {r.code for r in verify_pdf(document).signatures[0].coded_reasons}
        zh = _verify_page(client, document, "zh")
        assert 'data-verdict="invalid"' in zh and chinese in zh
        assert all(f'data-reason="{code}"' in zh for code in codes)
        assert not [r for r in english if r in zh], english
        en = _verify_page(client, document, "en")
        assert all(r.replace("'", "&#39;") in en for r in english), english


def test_a_seal_certificate_expired_since_is_judged_at_the_trusted_time(app, ca, seal, monkeypatch):
    """Verifying 400 days from now, when the seal's one-year certificate has expired: the timestamp
    (its TSA certificate still valid) proves the seal was made while the certificate was valid
    (ETSI EN 319 102-1 §5.6.2.1, past signature validation), so the seal stays valid."""
    from idp.seals import trust

    tsa = make_timestamper(app, ca, days=800)
    sealed = seal_pdf(make_pdf(), seal, APPROVER, timestamper=tsa)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400)
    assert seal.certificate.not_valid_after_utc < later < ca.issuing.certificate.not_valid_after_utc
    real = trust.validation_context
    monkeypatch.setattr(trust, "validation_context", lambda moment=None: real(moment=moment or later))
    sig = only(verify_pdf(sealed))
    assert sig.verdict == "valid" and sig.chain_trusted, sig.to_dict()

    untimed = make_timestamper(app, ca, days=30)  # its own certificate expired by then: no trusted time
    sig = only(verify_pdf(seal_pdf(make_pdf(), seal, APPROVER, timestamper=untimed)))
    assert sig.verdict == "indeterminate" and not sig.chain_trusted, sig.to_dict()
    assert "The seal's certificate cannot be validated (out_of_bounds_no_poe)." in sig.reasons


# --- revocation (report.revocation_verdict; RFC 5280 §5.3.2) -----------------------------------

def test_revoked_after_sealing_stays_valid(app, ca, seal):
    from idp.pki.service import revoke_certificate

    # Sealed two minutes ago (the TSA's genTime), revoked now: revocation is recorded to the second.
    earlier = make_timestamper(app, ca, fixed_dt=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=2))
    sealed = seal_pdf(make_pdf(), seal, APPROVER, timestamper=earlier)
    revoke_certificate(format(seal.certificate.serial_number, "x"), "cessationOfOperation")
    sig = only(verify_pdf(sealed))
    assert sig.verdict == "valid", sig.to_dict()
    assert sig.revocation["at_signing"] == "good" and sig.revocation["now"] == "revoked"
    assert sig.revocation["reason"] == "cessationOfOperation"
    assert any("after the document was sealed" in r for r in sig.reasons)


def test_revoked_before_sealing_is_invalid(seal, tsa):
    from idp.pki.service import revoke_certificate

    revoke_certificate(format(seal.certificate.serial_number, "x"), "superseded")
    sealed = seal_pdf(make_pdf(), seal, APPROVER, timestamper=tsa)
    sig = only(verify_pdf(sealed))
    assert sig.verdict == "invalid", sig.to_dict()
    assert sig.revocation["at_signing"] == "revoked" and sig.revocation["now"] == "revoked"
    assert any("before the document was sealed" in r for r in sig.reasons)


def test_key_compromise_dated_before_the_seal_invalidates_it(sealed, seal):
    from idp.db import db
    from idp.pki.service import revoke_certificate
    from idp.seals.trust import certificate_record

    revoke_certificate(format(seal.certificate.serial_number, "x"), "keyCompromise")
    row = certificate_record(seal.certificate)
    row.invalidity_date = dt.datetime.utcnow().replace(tzinfo=None) - dt.timedelta(hours=1)
    db.session.commit()
    sig = only(verify_pdf(sealed))
    assert sig.verdict == "invalid" and sig.revocation["at_signing"] == "revoked", sig.to_dict()


# --- what is refused, and what verification says about files that are not sealed PDFs ----------

@pytest.mark.parametrize("data, message", [
    (b"hello, not a pdf at all", "The file is not a PDF."),
    (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer <<>>\n%%EOF\n", "The PDF is damaged and cannot be read."),
    (make_pdf(password="secret-pass"), "The PDF is encrypted; remove the password protection and try again."),
])
def test_unusable_input_is_refused(seal, tsa, data, message):
    with pytest.raises(DomainError) as err:
        seal_pdf(data, seal, APPROVER, timestamper=tsa)
    assert err.value.message == message


@pytest.mark.parametrize("where, message", [
    (dict(page=0), "Page 0 does not exist; the document has 2 page(s)."),
    (dict(page=3), "Page 3 does not exist; the document has 2 page(s)."),
    (dict(x=500, y=100), "The stamp (119 × 119 pt) at x=500, y=100 does not fit on the page (595 × 842 pt)."),
    (dict(x=100, y=-1), "The stamp (119 × 119 pt) at x=100, y=-1 does not fit on the page (595 × 842 pt)."),
    (dict(x=100, y=750), "The stamp (119 × 119 pt) at x=100, y=750 does not fit on the page (595 × 842 pt)."),
])
def test_a_stamp_must_land_on_a_page(seal, tsa, where, message):
    with pytest.raises(DomainError) as err:
        seal_pdf(make_pdf(2), seal, APPROVER, timestamper=tsa, **where)
    assert err.value.message == message


A3_LANDSCAPE = (1191, 842)


@pytest.mark.parametrize("kind, media_box, rotate, expect", [
    ("A4", (0, 0, 595, 842), 0, {"width": 595, "height": 842, "rotate": 0}),
    ("A3 landscape", (0, 0, *A3_LANDSCAPE), 0, {"width": 1191, "height": 842, "rotate": 0}),
    ("Letter, shown turned", (0, 0, 612, 792), 90, {"width": 612, "height": 792, "rotate": 90}),
    ("offset box, -90", (100, 50, 700, 900), -90, {"width": 600, "height": 850, "rotate": 270}),
])
def test_page_geometry_is_the_chosen_pages_size_and_rotation(app, kind, media_box, rotate, expect):
    """What the stamp placer draws (ISO 32000-1 §7.7.3.3 MediaBox/CropBox, /Rotate): the page's own
    size in points (the typed x and y are in it) and how a viewer turns it."""
    from idp.seals.pdf import page_geometry

    data = make_pdf(pages=3, media_box=media_box, rotate=rotate)
    assert page_geometry(data) == {"page": 3, "pages": 3, **expect}, kind
    assert page_geometry(data, 1)["page"] == 1
    with pytest.raises(DomainError) as err:
        page_geometry(data, 4)
    assert err.value.code == "page_out_of_range"


MIXED = [((0, 0, 595, 842), 0), ((0, 0, *A3_LANDSCAPE), 0), ((0, 0, 612, 792), 90), ((100, 50, 700, 900), -90)]


def test_document_geometry_answers_for_every_page_at_once(app):
    """One upload, every page (ISO 32000-1 §7.7.3.3): ``geometry`` holds each page's size and /Rotate,
    each the same as the single-page answer, found in one pass over the page tree; the chosen page's
    fields stay on top (what the placer used before)."""
    from idp.seals.pdf import document_geometry, page_geometry

    data = make_mixed_pdf(MIXED)
    answer = document_geometry(data, 2)
    singles = [page_geometry(data, n) for n in range(1, 5)]
    assert [{"pages": 4, **g} for g in answer["geometry"]] == singles
    assert {k: v for k, v in answer.items() if k != "geometry"} == singles[1]
    assert document_geometry(data)["page"] == 4  # empty: the last page
    assert [g["rotate"] for g in answer["geometry"]] == [0, 0, 90, 270]


def test_document_geometry_is_bounded_by_config(app):
    """IDP_SEAL_PLACER_MAX_PAGES: no more pages than that in one answer, and a chosen page beyond it
    still answered (the placer asks again for it)."""
    from idp.seals.pdf import document_geometry

    app.config["SEAL_PLACER_MAX_PAGES"] = 2
    data = make_mixed_pdf(MIXED)
    assert [g["page"] for g in document_geometry(data, 1)["geometry"]] == [1, 2]
    beyond = document_geometry(data, 3)
    assert [g["page"] for g in beyond["geometry"]] == [1, 2, 3]
    assert (beyond["page"], beyond["width"], beyond["height"], beyond["rotate"]) == (3, 612, 792, 90)
    assert [g["page"] for g in document_geometry(data)["geometry"]] == [1, 2, 4]


def _hand_made_pdf(objects: dict[int, bytes]) -> bytes:
    """A PDF of exactly these objects (number → body), catalogue 1, with a classic cross-reference
    table (ISO 32000-1 §7.5.4: 20-byte entries, offsets of each ``n 0 obj``)."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = out.tell()
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, objects[number]))
    size = max(objects) + 1
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    for number in range(1, size):
        out.write(b"%010d 00000 n \n" % offsets[number] if number in offsets else b"0000000000 65535 f \n")
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref))
    return out.getvalue()


# A nested page tree (ISO 32000-1 §7.7.3.2) whose object numbers do not follow the document order:
# root 2 → [node 7 (landscape /MediaBox, /Rotate 90) → [page 9 (inherits both), page 4 (its own box,
# /Rotate 0)], node 3 (/Rotate 180) → [node 5 (/CropBox) → [page 8], page 6 (the root's /MediaBox)]].
NESTED = {
    1: b"<< /Type /Catalog /Pages 2 0 R >>",
    2: b"<< /Type /Pages /Kids [7 0 R 3 0 R] /Count 4 /MediaBox [0 0 595 842] /Resources << >> >>",
    7: b"<< /Type /Pages /Parent 2 0 R /Kids [9 0 R 4 0 R] /Count 2 /MediaBox [0 0 842 595] /Rotate 90 >>",
    9: b"<< /Type /Page /Parent 7 0 R >>",
    4: b"<< /Type /Page /Parent 7 0 R /MediaBox [0 0 612 792] /Rotate 0 >>",
    3: b"<< /Type /Pages /Parent 2 0 R /Kids [5 0 R 6 0 R] /Count 2 /Rotate 180 >>",
    5: b"<< /Type /Pages /Parent 3 0 R /Kids [8 0 R] /Count 1 /CropBox [10 20 310 420] >>",
    8: b"<< /Type /Page /Parent 5 0 R >>",
    6: b"<< /Type /Page /Parent 3 0 R >>",
}
NESTED_GEOMETRY = [(842, 595, 90), (612, 792, 0), (300, 400, 180), (595, 842, 180)]


def test_document_geometry_walks_a_nested_page_tree(app):
    """ISO 32000-1 §7.7.3.2-3: pages are the leaves of the page tree in the order of each node's /Kids
    (not of object numbers), and /MediaBox, /CropBox and /Rotate are inherited from the nearest
    ancestor that has them (Table 30). The placer's one-pass walk (``document_geometry``) answers each
    page as the signer's own lookup does (``_page_object``, ``_box_of``, ``_rotation_of``, the path
    of ``page_geometry``), whatever the tree's depth; bounded, it stops inside the tree."""
    from idp.seals.pdf import _box_of, _page_object, _rotation_of, document_geometry, page_geometry

    data = _hand_made_pdf(NESTED)
    reader = PdfFileReader(io.BytesIO(data))
    assert reader.root["/Pages"]["/Kids"][0].get_object()["/Type"] == "/Pages"  # really nested
    answer = document_geometry(data, 3)
    got = [(g["page"], g["width"], g["height"], g["rotate"]) for g in answer["geometry"]]
    assert got == [(n, *shape) for n, shape in enumerate(NESTED_GEOMETRY, start=1)]
    chosen = (answer["pages"], answer["page"], answer["width"], answer["height"], answer["rotate"])
    assert chosen == (4, 3, 300, 400, 180)
    for n, g in enumerate(answer["geometry"], start=1):
        assert {"pages": 4, **g} == page_geometry(data, n)
        page = _page_object(reader, n - 1)
        llx, lly, urx, ury = _box_of(page)
        assert (urx - llx, ury - lly, _rotation_of(page)) == NESTED_GEOMETRY[n - 1]
    app.config["SEAL_PLACER_MAX_PAGES"] = 3
    bounded = document_geometry(data)
    assert [(g["page"], g["width"], g["rotate"]) for g in bounded["geometry"]] == [(1, 842, 90), (2, 612, 0),
                                                                                   (3, 300, 180), (4, 595, 180)]


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_the_stamp_size_rule_is_the_signature_widgets_rect(seal, tsa, rotate):
    """``stamp_size`` (what the sealing page's outline draws) is the box pyHanko gives the signature
    widget (its /Rect, ISO 32000-1 §12.5.2) for a wide image on a page turned by /Rotate."""
    import dataclasses

    from idp.seals.apply import stamp_boxes
    from idp.seals.pdf import image_size, stamp_size

    credential = dataclasses.replace(seal, image_png=flag_png())
    sealed = seal_pdf(make_pdf(media_box=(0, 0, 612, 792), rotate=rotate), credential, APPROVER, timestamper=tsa,
                      x=100, y=200)
    emb = PdfFileReader(io.BytesIO(sealed)).embedded_regular_signatures[0]
    x0, y0, x1, y1 = (float(v) for v in emb.sig_field["/Rect"])
    width, height = stamp_size(image_size(flag_png()), rotate)
    assert (x0, y0) == (100, 200) and (round(x1 - x0, 2), round(y1 - y0, 2)) == (round(width, 2), round(height, 2))
    assert (width, height) == ((59.5, 119) if rotate % 180 else (119, 59.5))

    class Row:  # what stamp_boxes reads of a Seal row
        id, image_png = 7, flag_png()

    assert stamp_boxes([Row])["7"][str(rotate)] == [width, height]


def test_a_stamp_placed_on_a_landscape_a3_page_lands_there(seal, tsa, tmp_path):
    """A3 landscape: positions beyond A4's 595 × 842 are on the page; the stamp is drawn there."""
    x, y = 1000, 600
    img = render(seal_pdf(make_pdf(media_box=(0, 0, *A3_LANDSCAPE)), seal, APPROVER, timestamper=tsa, x=x, y=y),
                 1, tmp_path)
    assert img.size == A3_LANDSCAPE
    top = A3_LANDSCAPE[1] - y - STAMP
    assert red_pixels(img, (x, top, x + STAMP, top + STAMP)) > 500


def flag_png() -> bytes:
    """A wide stamp image (2 : 1) with a feature that shows its orientation: red, with a blue square in
    the upper-left corner."""
    img = Image.new("RGBA", (400, 200), (220, 0, 0, 255))
    img.paste((0, 0, 220, 255), (0, 0, 100, 100))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def blue(px) -> bool:
    r, g, b = px
    return b > 180 and r < 80 and g < 80


def bounds(img: Image.Image, test) -> tuple[int, int, int, int]:
    """(left, top, right, bottom), exclusive, of the pixels for which ``test`` holds."""
    mask = Image.new("1", img.size)
    mask.putdata([255 if test(px) else 0 for px in img.get_flattened_data()])
    box = mask.getbbox()
    assert box, "nothing found"
    return box


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_the_stamp_stands_upright_as_a_turned_page_is_shown(seal, tsa, tmp_path, rotate):
    """A Letter page with /Rotate (ISO 32000-1 §7.7.3.3): poppler shows it turned clockwise; the stamp's
    appearance is turned back (its /Matrix, §12.5.5; /MK /R, §12.5.6.19), so a wide stamp stays wide,
    its upper-left feature stays upper-left, by default in the lower-right corner as shown, and
    pdfsig still finds the signature valid."""
    import dataclasses

    credential = dataclasses.replace(seal, image_png=flag_png())
    sealed = seal_pdf(make_pdf(media_box=(0, 0, 612, 792), rotate=rotate), credential, APPROVER, timestamper=tsa)
    img = render(sealed, 1, tmp_path)
    assert img.size == ((792, 612) if rotate % 180 else (612, 792))  # as shown: turned
    left, top, right, bottom = bounds(img, lambda px: red(px) or blue(px))
    assert (right - left, bottom - top) in ((w, h) for w in (STAMP, STAMP + 1) for h in (59, 60, 61)), \
        (left, top, right, bottom)
    assert img.width - 36 - 1 <= right <= img.width - 36 + 1 and img.height - 36 - 1 <= bottom <= img.height - 36 + 1
    b_left, b_top, b_right, b_bottom = bounds(img, blue)
    assert abs(b_left - left) <= 1 and abs(b_top - top) <= 1, (b_left, b_top, left, top)
    assert 27 <= b_right - b_left <= 32 and 27 <= b_bottom - b_top <= 32  # a quarter of the width: 29.75 pt

    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    out = pdfsig(path, tmp_path)
    assert "Signature Validation: Signature is Valid." in out and "Total document signed" in out, out
    assert verify_pdf(sealed).verdict == "valid"


def test_a_turned_page_takes_the_stamp_where_asked_in_its_own_coordinates(seal, tsa):
    """x, y are the page's own coordinates (what the placer sends); on a page shown turned a quarter the
    stamp's box on the page is as wide as the image is high, and its appearance says so: /BBox the
    image's own (wide) size, /Matrix turning it a quarter counterclockwise, /MK /R 90."""
    import dataclasses

    credential = dataclasses.replace(seal, image_png=flag_png())
    sealed = seal_pdf(make_pdf(media_box=(0, 0, 612, 792), rotate=90), credential, APPROVER, timestamper=tsa,
                      x=100, y=200)
    reader = PdfFileReader(io.BytesIO(sealed))
    widget = reader.find_page_for_modification(0)[0].get_object()["/Annots"][0].get_object()
    assert [round(float(v), 1) for v in widget["/Rect"]] == [100, 200, 159.5, 319]
    assert widget["/MK"]["/R"] == 90
    ap = widget["/AP"]["/N"].get_object()
    x0, y0, x1, y1 = (float(v) for v in ap["/BBox"])  # pyHanko writes it [0 h w 0], in whole points
    assert (abs(x1 - x0), abs(y1 - y0)) in ((119, 59), (119, 60)), ap["/BBox"]
    assert [int(v) for v in ap["/Matrix"]] == [0, 1, -1, 0, 0, 0]


def test_size_is_bounded_by_config(app, seal, tsa):
    data = make_pdf()
    app.config["SEAL_MAX_UPLOAD_BYTES"] = len(data) - 1
    with pytest.raises(DomainError) as err:
        seal_pdf(data, seal, APPROVER, timestamper=tsa)
    assert err.value.status == 413
    report = verify_pdf(data)
    assert report.verdict == "invalid" and "MiB" in report.reasons[0]


@pytest.mark.parametrize("data, reason", [
    (make_pdf(), "The file has no seal."),
    (b"just text", "The file is not a PDF."),
    (b"%PDF-1.4\ngarbage", "The PDF is damaged and cannot be read."),
])
def test_verification_of_files_without_a_seal(app, data, reason):
    report = verify_pdf(data)
    assert report.verdict == "invalid" and report.exit_code == 1 and report.signatures == []
    assert report.reasons == [reason]


def test_a_silent_timestamp_authority_means_nothing_is_sealed(seal):
    """No trusted time, no seal: a PAdES B-T signature needs its RFC 3161 token (503, try later)."""
    from pyhanko.sign.timestamps.api import TimeStamper
    from pyhanko.sign.timestamps.common_utils import TimestampRequestError

    class Silent(TimeStamper):
        async def async_request_tsa_response(self, req):
            raise TimestampRequestError("connection refused")

    with pytest.raises(DomainError) as err:
        seal_pdf(make_pdf(), seal, APPROVER, timestamper=Silent())
    assert err.value.status == 503
    assert err.value.message == "The timestamp authority did not answer; nothing was sealed. Try again later."
