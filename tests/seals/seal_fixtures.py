"""A hub with its CA and TSA, and a seal credential made directly from the hub's CA with
``pki.profile.build_seal_certificate`` (the registry's ``credential_for`` replaces this once merged)."""
from __future__ import annotations

import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from idp.seals.credential import Approver, SealCredential

SEAL_NAME = "本溪市市场监督管理局行政审批专用章"
DEPARTMENT = ("scjgj", "本溪市市场监督管理局")


def openssl(*args, input=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=60, cwd=cwd)


@pytest.fixture
def hub(hub_ca):
    """The hub's CA and TSA as ``idp init`` creates them (``hub_ca`` in tests/conftest.py)."""
    return hub_ca


def make_seal_credential(hub, *, name=SEAL_NAME, department=DEPARTMENT) -> SealCredential:
    """A seal of ``department`` with a document-signing certificate from the hub's issuing CA, recorded
    like the registry records it (a ``certificate`` row with usage "seal" and a ``seal`` row)."""
    from flask import current_app
    from sqlalchemy import select

    from idp.accounts.models import Department
    from idp.accounts.officials import create_department
    from idp.db import db
    from idp.pki import profile
    from idp.pki.models import Certificate
    from idp.seals.models import Seal

    cfg = current_app.config
    code, dept_name = department
    dept = db.session.execute(select(Department).where(Department.code == code)).scalar_one_or_none()
    dept = dept or create_department(code=code, name=dept_name)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = profile.build_seal_certificate(
        issuing=hub.issuing, ca_key=hub.issuing.private_key(cfg["KEYS_PASSPHRASE"]), public_key=key.public_key(),
        subject=profile.seal_subject(seal_name=name, department_name=dept_name, organization=cfg["PKI_ORGANIZATION"]),
        days=30, base_url=cfg["ISSUER"])
    row = Certificate(serial=format(cert.serial_number, "x"), issuer_ca=hub.issuing.id, usage="seal",
                      department_id=dept.id, subject=cert.subject.rfc4514_string(),
                      fingerprint=profile.fingerprint(cert), public_key_sha256=profile.spki_sha256(key.public_key()),
                      origin="generated", not_before=cert.not_valid_before_utc.replace(tzinfo=None),
                      not_after=cert.not_valid_after_utc.replace(tzinfo=None), status="active",
                      pem=cert.public_bytes(Encoding.PEM).decode())
    db.session.add(row)
    db.session.flush()
    seal = Seal(department_id=dept.id, name=name, type="审批专用章", certificate_id=row.id,
                key_encrypted="(test: the key stays in memory)", image_png=b"")
    db.session.add(seal)
    db.session.commit()
    return SealCredential(seal_id=seal.id, name=name, seal_type="审批专用章", department=dept_name, private_key=key,
                          certificate=cert, chain=tuple(a.certificate for a in hub.chain()), image_png=b"")


@pytest.fixture
def credential(hub) -> SealCredential:
    return make_seal_credential(hub)


@pytest.fixture
def approver() -> Approver:
    return Approver(name="张三", username="zhangsan", department="本溪市市场监督管理局", title="科员")


@pytest.fixture
def ca_files(hub, tmp_path):
    """root.pem, and chain.pem = the issuing CA then the root (what `idp pki ca-cert` prints)."""
    root = tmp_path / "root.pem"
    root.write_bytes(hub.root.certificate.public_bytes(Encoding.PEM))
    chain = tmp_path / "chain.pem"
    chain.write_bytes(b"".join(a.certificate.public_bytes(Encoding.PEM) for a in hub.chain()))
    return root, chain
