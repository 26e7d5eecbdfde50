"""The seal registry (issue 6): a seal's key, document-signing certificate and image; who may
apply it; suspension, resumption and final revocation (CRL, RFC 5280 §5.3.1/§5.3.2), every change
audited; a seal's certificate can never sign anyone in."""
from __future__ import annotations

import datetime as dt
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from idp.audit.models import AuditEvent
from idp.db import db
from idp.errors import Conflict, DomainError
from idp.pki.models import Certificate
from idp.seals.models import Seal, SealAuthorization
from tests.seals.registry_support import (DEPARTMENT, SEAL_NAME, authorized_seal, ca, make_official,  # noqa: F401
                                          official, seal)


def events(action: str) -> list[AuditEvent]:
    return list(db.session.execute(select(AuditEvent).where(AuditEvent.action == action)
                                   .order_by(AuditEvent.id)).scalars())


def openssl(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)


def person(username="zhangsan"):
    from idp.accounts.models import Person

    return db.session.execute(select(Person).where(Person.username == username)).scalar_one()


def code_of(fn, *args) -> str:
    with pytest.raises(DomainError) as exc:
        fn(*args)
    return exc.value.code


def test_create_records_certificate_key_and_image(seal):
    """A seal gets its own certificate row (usage seal, no person, the department), its key encrypted
    with the data key (never the PEM in clear) and a generated stamp; audited as seal.created."""
    from idp.seals.service import credential_for

    row = db.session.get(Certificate, seal.certificate_id)
    assert (row.usage, row.person_id, row.official_id, row.status) == ("seal", None, None, "active")
    assert row.department_id == seal.department_id and seal.status == "active"
    assert seal.type == "审批专用章" and seal.image_origin == "generated"
    assert seal.image_png.startswith(b"\x89PNG\r\n\x1a\n")
    stored = db.session.execute(select(Seal.key_encrypted).where(Seal.id == seal.id)).scalar()
    assert "PRIVATE KEY" not in stored and "MI" not in stored[:4]
    cred = credential_for(seal)
    cert = cred.certificate
    assert cred.private_key.public_key().public_numbers() == cert.public_key().public_numbers()
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == SEAL_NAME
    assert cred.department == DEPARTMENT[1] and len(cred.chain) == 2
    [ev] = events("seal.created")
    assert ev.actor == "operator" and ev.target == f"seal:{seal.id}"
    assert ev.detail["certificate"] == row.serial and ev.detail["department"] == "SCJGJ"


def test_seal_certificate_chains_to_the_root_with_the_signing_profile(seal, ca, tmp_path):
    """RFC 5280 §6: the chain validates with openssl; §4.2.1.3 keyUsage digitalSignature and
    nonRepudiation (contentCommitment), critical; §4.2.1.12 no extendedKeyUsage, so no clientAuth."""
    from idp.seals.service import credential_for

    cert = credential_for(seal).certificate
    (tmp_path / "root.pem").write_text(ca.root.pem)
    (tmp_path / "issuing.pem").write_text(ca.issuing.pem)
    (tmp_path / "seal.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    r = openssl("verify", "-CAfile", str(tmp_path / "root.pem"), "-untrusted", str(tmp_path / "issuing.pem"),
                str(tmp_path / "seal.pem"))
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stdout + r.stderr
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    assert not ku.value.key_cert_sign and not ku.value.key_encipherment
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    text = openssl("x509", "-in", str(tmp_path / "seal.pem"), "-noout", "-text").stdout
    assert "TLS Web Client Authentication" not in text and "Non Repudiation" in text


def test_create_refusals(official, ca):
    from idp.seals.service import create_seal

    assert code_of(create_seal, "NOPE", SEAL_NAME) == "not_found"
    with pytest.raises(DomainError):
        create_seal("SCJGJ", "   ")
    create_seal("SCJGJ", SEAL_NAME)
    assert code_of(create_seal, "SCJGJ", SEAL_NAME) == "conflict"  # one live seal per name
    assert len(events("seal.created")) == 1


def test_authorize_is_idempotent_audited_and_reactivates(seal):
    from idp.seals.service import authorize, deauthorize

    first = authorize(seal.id, "zhangsan", actor="operator")
    assert first == {"seal": seal.id, "username": "zhangsan", "authorized": True, "changed": True}
    assert authorize(seal.id, "zhangsan")["changed"] is False
    assert len(events("seal.authorized")) == 1
    deauthorize(seal.id, "zhangsan", actor="operator")
    [ev] = events("seal.deauthorized")
    assert ev.detail == {"person": person().sub}  # a pseudonymous subject, no name
    assert code_of(deauthorize, seal.id, "zhangsan") == "not_authorized"
    assert authorize(seal.id, "zhangsan")["changed"] is True
    rows = db.session.execute(select(SealAuthorization)).scalars().all()
    assert len(rows) == 1 and rows[0].revoked_at is None  # the same authorization, active again
    assert len(events("seal.authorized")) == 2


def test_only_officials_of_the_department_can_be_authorized(seal):
    from idp.seals.service import authorize

    make_official(username="lisi", name="李四", department=("RSJ", "本溪市人力资源和社会保障局"))
    assert code_of(authorize, seal.id, "lisi") == "not_an_official"
    assert code_of(authorize, seal.id, "nobody") == "not_found"
    assert code_of(authorize, 9999, "zhangsan") == "seal_not_found"
    assert events("seal.authorized") == []


def test_check_may_apply_each_refusal_has_its_code(authorized_seal):
    """The one rule: seal_not_found, seal_suspended, seal_revoked, seal_expired, not_an_official,
    not_authorized; an authorized official of the department gets their membership back."""
    from idp.accounts.officials import remove_official
    from idp.seals.service import check_may_apply, deauthorize, resume, revoke, seals_for, suspend

    seal = authorized_seal
    zhangsan = person()
    assert check_may_apply(zhangsan, seal).person_id == zhangsan.id
    assert check_may_apply(zhangsan, seal.id).person_id == zhangsan.id
    assert [s.id for s in seals_for(zhangsan)] == [seal.id]
    assert code_of(check_may_apply, zhangsan, None) == "seal_not_found"
    assert code_of(check_may_apply, zhangsan, 424242) == "seal_not_found"

    make_official(username="wangwu", name="王五", department=DEPARTMENT)
    assert code_of(check_may_apply, person("wangwu"), seal) == "not_authorized"
    make_official(username="lisi", name="李四", department=("RSJ", "本溪市人力资源和社会保障局"))
    assert code_of(check_may_apply, person("lisi"), seal) == "not_an_official"

    suspend(seal.id, actor="operator")
    assert code_of(check_may_apply, zhangsan, seal) == "seal_suspended"
    assert seals_for(zhangsan) == []
    assert code_of(suspend, seal.id) == "seal_suspended"
    resume(seal.id, actor="operator")
    assert code_of(resume, seal.id) == "seal_active"  # only a suspended seal resumes
    assert check_may_apply(zhangsan, seal)

    cert = db.session.get(Certificate, seal.certificate_id)
    not_after = cert.not_after
    cert.not_after = dt.datetime(2020, 1, 1)
    db.session.commit()
    assert code_of(check_may_apply, zhangsan, seal) == "seal_expired"
    cert.not_after = not_after
    db.session.commit()

    remove_official(username="zhangsan", department="SCJGJ")
    assert code_of(check_may_apply, zhangsan, seal) == "not_an_official"
    assert seals_for(zhangsan) == []

    revoke(seal.id, actor="operator")
    assert code_of(check_may_apply, zhangsan, seal) == "seal_revoked"
    assert code_of(resume, seal.id) == "seal_revoked"
    assert code_of(suspend, seal.id) == "seal_revoked"
    assert code_of(revoke, seal.id) == "seal_revoked"
    assert code_of(deauthorize, seal.id, "wangwu") == "not_authorized"
    actions = [e.action for e in db.session.execute(select(AuditEvent).where(AuditEvent.action.like("seal.%"))
                                                     .order_by(AuditEvent.id)).scalars()]
    assert actions == ["seal.created", "seal.authorized", "seal.suspended", "seal.resumed", "seal.revoked"]


def _crl_text(ca, tmp_path) -> str:
    from idp.pki import crl

    _, _, der = crl.current(ca.issuing.id)
    (tmp_path / "crl.der").write_bytes(der)
    r = openssl("crl", "-inform", "DER", "-in", str(tmp_path / "crl.der"), "-noout", "-text")
    assert r.returncode == 0, r.stderr
    return r.stdout


def _openssl_serial(serial_hex: str) -> str:
    s = serial_hex.upper()
    return s if len(s) % 2 == 0 else "0" + s


def test_revoke_publishes_the_serial_and_invalidity_date_in_the_crl(seal, ca, tmp_path):
    """RFC 5280 §5.3.1 reasonCode keyCompromise and §5.3.2 invalidityDate in the CRL entry; the seal and
    its certificate are revoked in one commit, both audited."""
    from idp.seals.service import revoke

    serial = db.session.get(Certificate, seal.certificate_id).serial
    assert _openssl_serial(serial) not in _crl_text(ca, tmp_path)
    compromised = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    revoke(seal.id, "keyCompromise", compromised, actor="operator")
    text = _crl_text(ca, tmp_path)
    entry = text.split(_openssl_serial(serial), 1)[1].split("Serial Number:", 1)[0]
    assert "Key Compromise" in entry
    assert "Invalidity Date" in entry and "Jan  1 19:04:05 2026 GMT" in entry
    db.session.expire_all()
    cert = db.session.get(Certificate, seal.certificate_id)
    assert (cert.status, cert.revocation_reason, cert.invalidity_date) == (
        "revoked", "keyCompromise", dt.datetime(2026, 1, 1, 19, 4, 5))
    assert seal.status == "revoked" and seal.revocation_reason == "keyCompromise"
    [pki_ev] = events("pki.certificate_revoked")
    [seal_ev] = events("seal.revoked")
    assert pki_ev.detail["invalidity_date"] == "2026-01-01T19:04:05Z"
    assert seal_ev.detail["certificate"] == serial and seal_ev.detail["reason"] == "keyCompromise"


def test_revoke_refuses_bad_reasons_and_dates(seal):
    from idp.seals.service import revoke

    with pytest.raises(DomainError, match="unknown revocation reason"):
        revoke(seal.id, "certificateHold")
    with pytest.raises(DomainError, match="keyCompromise"):
        revoke(seal.id, "superseded", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    with pytest.raises(DomainError, match="future"):
        revoke(seal.id, "keyCompromise", dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1))
    db.session.expire_all()
    assert seal.status == "active" and db.session.get(Certificate, seal.certificate_id).status == "active"
    assert events("seal.revoked") == []


def test_unspecified_revocation_has_no_reason_code(seal, ca, tmp_path):
    """RFC 5280 §5.3.1: reasonCode unspecified SHOULD be absent; no invalidityDate was given."""
    from idp.seals.service import revoke

    serial = db.session.get(Certificate, seal.certificate_id).serial
    revoke(seal.id)
    entry = _crl_text(ca, tmp_path).split(_openssl_serial(serial), 1)[1]
    assert "Reason Code" not in entry and "Invalidity Date" not in entry


def test_seal_certificate_cannot_log_in(seal):
    """A seal's certificate is refused by login validation with its own reason (not a login certificate)."""
    from idp.pki.validation import validate_certificate
    from idp.seals.service import credential_for

    check = validate_certificate(credential_for(seal).certificate)
    assert not check.valid and check.reason == "wrong_purpose"
    assert "seal certificate" in check.detail and "not a login certificate" in check.detail


def test_list_certificates_shows_seal_certificates(seal):
    from idp.pki.service import list_certificates

    [row] = [c for c in list_certificates() if c["usage"] == "seal"]
    assert row["username"] is None and row["department"] == "SCJGJ"
    assert row["serial"] == db.session.get(Certificate, seal.certificate_id).serial


def test_rotate_data_reencrypts_the_seal_key(seal, runner):
    """``idp keys rotate-data`` moves the seal key to the new data key; it still opens."""
    from idp.accounts.protection import key_id_of
    from idp.seals.service import credential_for

    before = credential_for(seal).private_key.private_numbers()
    assert key_id_of(seal.key_encrypted) == "1"
    r = runner.invoke(args=["keys", "rotate-data"])
    assert r.exit_code == 0, r.output
    db.session.expire_all()
    seal = db.session.get(Seal, seal.id)
    assert key_id_of(seal.key_encrypted) == "2"
    assert credential_for(seal).private_key.private_numbers() == before


def test_seal_certificate_is_refused_at_the_officials_jwt_bearer_grant(seal, app, client, tmp_path):
    """RFC 7523 §3 item 9 lets the server refuse a key it does not accept for sign-in: a seal's key and
    certificate presented to the officials' token endpoint get invalid_grant, no token, and an audited
    refusal naming the purpose."""
    from clients.sealctl.keys import Pkcs12Key
    from idp.oauth.clients import create_client
    from idp.pki.profile import to_pkcs12
    from idp.seals.service import credential_for
    from tests.oauth.official_support import GRANT, refusals, token_request

    tool, _ = create_client(name="sealctl", redirect_uris=[], auth_method="none", grant_types=[GRANT])
    cred = credential_for(seal)
    p12 = tmp_path / "seal.p12"
    p12.write_bytes(to_pkcs12(key=cred.private_key, cert=cred.certificate, chain=list(cred.chain[:-1]),
                              password="p12-password-1", name="seal"))
    resp = token_request(client, app, Pkcs12Key(p12, "p12-password-1"), tool.client_id)
    assert resp.status_code == 400 and resp.json["error"] == "invalid_grant", resp.json
    assert "access_token" not in resp.json
    assert refusals(app) == ["certificate_wrong_purpose"]


def test_a_department_with_an_active_seal_is_not_closed(authorized_seal):
    """Closing a department needs its seals revoked or suspended first (a closed department's seal
    must not look usable); a suspended seal of a closed department is not resumed."""
    from idp.accounts.officials import close_department
    from idp.seals.service import check_may_apply, resume, suspend

    seal = authorized_seal
    with pytest.raises(Conflict, match="still has active seals"):
        close_department(DEPARTMENT[0])
    assert check_may_apply(person(), seal)  # nothing changed
    suspend(seal.id, actor="operator")
    assert close_department(DEPARTMENT[0])["officials_removed"] == 1
    assert code_of(resume, seal.id) == "department_closed"
    assert code_of(check_may_apply, person(), seal) == "seal_suspended"
