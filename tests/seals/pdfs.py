"""Test documents and a seal to put on them: PDFs written with pyHanko's own writer (one text line per
page, uncompressed so a test can find and change a byte), a red-circle stamp image, a seal credential
certified by the hub CA and a test timestamp authority certified by it too."""
from __future__ import annotations

import datetime as dt
import io

from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from PIL import Image, ImageDraw
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

A4 = (0, 0, 595, 842)
SEAL_NAME = "本溪市市场监督管理局行政审批专用章"
DEPARTMENT = ("scjgj", "本溪市市场监督管理局")


def page_text(n: int) -> bytes:
    return b"Approval document, page %d" % n


def make_pdf(pages: int = 1, media_box=A4, password: str | None = None, rotate: int = 0) -> bytes:
    """A PDF of ``pages`` A4 pages, each saying which page it is (classic xref table); with a
    ``password``, encrypted (AES-256, ISO 32000-2 §7.6.4); with ``rotate``, each page's /Rotate
    (ISO 32000-1 §7.7.3.3: shown turned clockwise by that many degrees)."""
    return make_mixed_pdf([(media_box, rotate)] * pages, password=password)


def make_mixed_pdf(shapes, password: str | None = None) -> bytes:
    """``make_pdf`` with one page per (media_box, rotate) in ``shapes``: pages of different sizes and turns."""
    w = PdfFileWriter(stream_xrefs=False)
    if password:
        w.encrypt(password, password)
    font = generic.DictionaryObject({pdf_name("/Type"): pdf_name("/Font"), pdf_name("/Subtype"): pdf_name("/Type1"),
                                     pdf_name("/BaseFont"): pdf_name("/Helvetica")})
    font_ref = w.add_object(font)
    for n, (media_box, rotate) in enumerate(shapes, start=1):
        content = generic.StreamObject(stream_data=b"BT /F1 18 Tf 72 760 Td (" + page_text(n) + b") Tj ET")
        resources = generic.DictionaryObject({pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): font_ref})})
        page = PageObject(contents=w.add_object(content), media_box=list(media_box), resources=resources)
        if rotate:
            page[pdf_name("/Rotate")] = generic.NumberObject(rotate)
        w.insert_page(page)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def red_circle_png(size: int = 400) -> bytes:
    """A red ring with a red star-ish centre on a transparent background, like a seal."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((8, 8, size - 8, size - 8), outline=(220, 0, 0, 255), width=size // 16)
    c = size // 2
    draw.regular_polygon((c, c, size // 8), 5, fill=(220, 0, 0, 255))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def _name(cn: str, ou: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "本溪市人民政府"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_seal(app, ca, *, name: str = SEAL_NAME, department=DEPARTMENT):
    """A seal as the registry will make it: a key, a document-signing certificate from the hub's
    issuing CA, its ``certificate`` row (usage seal) and ``seal`` row. Returns the SealCredential."""
    from sqlalchemy import select

    from idp.accounts.models import Department
    from idp.accounts.officials import create_department
    from idp.db import db
    from idp.pki.models import Certificate
    from idp.pki.profile import build_seal_certificate, fingerprint, pem_chain, seal_subject, spki_sha256
    from idp.seals.credential import SealCredential
    from idp.seals.models import Seal

    code, dept_name = department
    dept = db.session.execute(select(Department).where(Department.code == code)).scalar_one_or_none()
    if dept is None:
        create_department(code=code, name=dept_name)
        dept = db.session.execute(select(Department).where(Department.code == code)).scalar_one()
    key = ec.generate_private_key(ec.SECP256R1())
    cfg = app.config
    cert = build_seal_certificate(
        issuing=ca.issuing, ca_key=ca.issuing.private_key(cfg["KEYS_PASSPHRASE"]), public_key=key.public_key(),
        subject=seal_subject(seal_name=name, department_name=dept_name, organization=cfg["PKI_ORGANIZATION"]),
        days=365, base_url=cfg["ISSUER"])
    row = Certificate(serial=format(cert.serial_number, "x"), issuer_ca=ca.issuing.id, usage="seal",
                      department_id=dept.id, subject=cert.subject.rfc4514_string(), fingerprint=fingerprint(cert),
                      public_key_sha256=spki_sha256(key.public_key()), origin="generated",
                      not_before=cert.not_valid_before_utc.replace(tzinfo=None),
                      not_after=cert.not_valid_after_utc.replace(tzinfo=None), status="active",
                      pem=pem_chain(cert, []).decode())
    db.session.add(row)
    db.session.flush()
    image = red_circle_png()
    seal = Seal(department_id=dept.id, name=name, type="审批专用章", status="active", certificate_id=row.id,
                key_encrypted="(not used by these tests)", image_png=image)
    db.session.add(seal)
    db.session.commit()
    return SealCredential(seal_id=seal.id, name=name, seal_type="审批专用章", department=dept_name,
                          private_key=key,
                          certificate=cert, chain=tuple(a.certificate for a in ca.chain()), image_png=image)


_TSA_KEY = []


def _tsa_key():
    """pyHanko's DummyTimeStamper signs with RSA only; one key for the test session keeps tests quick."""
    if not _TSA_KEY:
        _TSA_KEY.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _TSA_KEY[0]


def make_timestamper(app, ca, *, fixed_dt: dt.datetime | None = None, days: int = 365) -> DummyTimeStamper:
    """pyHanko's in-process TSA with a certificate from the hub CA (critical timeStamping EKU)."""
    from idp.pki.profile import build_tsa_certificate
    from idp.seals.trust import to_asn1

    key = _tsa_key()
    cert = build_tsa_certificate(issuing=ca.issuing, ca_key=ca.issuing.private_key(app.config["KEYS_PASSPHRASE"]),
                                 public_key=key.public_key(), subject=_name("本溪政务网时间戳服务", "测试"),
                                 days=days, base_url=app.config["ISSUER"])
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return DummyTimeStamper(tsa_cert=to_asn1(cert), tsa_key=asn1_keys.PrivateKeyInfo.load(der),
                            certs_to_embed=SimpleCertificateStore.from_certs([to_asn1(ca.issuing.certificate)]),
                            fixed_dt=fixed_dt)
