"""Applying a seal (issue 6): only an authorized official, signed in at level 3 with a certificate that
is still valid, through a DPoP-bound token (RFC 9449 §7.1) or a fresh certificate sign-in in the
browser; every application is a record plus an audit event, every refusal is audited and signs nothing."""
from __future__ import annotations

import datetime as dt
import subprocess
from urllib.parse import quote, urlencode

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from clients.sealctl import hub as hubapi
from clients.sealctl.keys import Pkcs12Key
from idp.audit.models import AuditEvent
from idp.db import db
from idp.seals.models import SealApplication
from tests.oauth.official_support import quick_pkcs12, token_request, tool  # noqa: F401
from tests.pki.conftest import P12_PASSWORD, issue_p12
from tests.seals.pdfs import make_pdf
from tests.seals.registry_support import DEPARTMENT, authorized_seal, ca, make_official, official, seal  # noqa: F401

TRUSTED = "127.0.0.1"


@pytest.fixture
def app_config():
    return {"TRUSTED_PROXIES": TRUSTED}


@pytest.fixture
def zhangsan_key(official, runner, tmp_path):
    r, p12 = issue_p12(runner, tmp_path, "zhangsan", "zhangsan.p12")
    assert r.exit_code == 0, r.output
    return Pkcs12Key(p12, P12_PASSWORD)


@pytest.fixture
def token(app, client, zhangsan_key, tool):
    r = token_request(client, app, zhangsan_key, tool)
    assert r.status_code == 200, r.json
    return r.json["access_token"]


def call(app, client, key, token, method, path, *, data=None, query=None, content_type="application/pdf",
         lang=None):
    url = app.config["ISSUER"] + path
    headers = {"Authorization": f"DPoP {token}", "DPoP": hubapi.dpop_proof(key, method, url, token)}
    if lang:
        headers["Accept-Language"] = lang
    target = path + ("?" + urlencode(query) if query else "")
    if method == "GET":
        return client.get(target, headers=headers)
    return client.post(target, headers=headers, data=data, content_type=content_type)


def events(action):
    return db.session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars().all()


def applications():
    return db.session.execute(select(SealApplication)).scalars().all()


def test_my_seals_lists_what_i_may_apply(app, client, zhangsan_key, token, authorized_seal):
    r = call(app, client, zhangsan_key, token, "GET", "/api/seals")
    assert r.status_code == 200, r.json
    assert [(s["id"], s["name"], s["department"]) for s in r.json["seals"]] == [
        (authorized_seal.id, authorized_seal.name, DEPARTMENT[0])]


def test_sealing_a_pdf_through_the_api_records_it_and_verifies(app, client, zhangsan_key, token, authorized_seal):
    """The sealed PDF verifies (seal, official, trusted time), and the application is a row whose
    digests match, plus a ``seal.applied`` event on the chain (``idp audit verify`` stays intact)."""
    import hashlib

    from idp.seals.pdf import verify_pdf

    doc = make_pdf(2)
    r = call(app, client, zhangsan_key, token, "POST", f"/api/seals/{authorized_seal.id}/apply", data=doc,
             query={"page": 1, "x": 300, "y": 200})
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    assert r.mimetype == "application/pdf"
    sealed = r.data
    report = verify_pdf(sealed)
    assert report.verdict == "valid", report.to_dict()
    sig = report.signatures[0]
    assert sig.official and "张三" in sig.official
    assert sig.seal["name"] == authorized_seal.name and sig.signing_time
    [row] = applications()
    assert str(row.id) == r.headers["Seal-Application"]
    assert row.document_sha256 == hashlib.sha256(doc).hexdigest()
    assert row.result_sha256 == hashlib.sha256(sealed).hexdigest()
    assert (row.kind, row.channel) == ("pdf", "api") and row.tsa_serial
    [ev] = events("seal.applied")
    assert ev.detail["application"] == row.id and ev.detail["tsa_serial"] == row.tsa_serial
    # The recorded signature is the one embedded in the PDF (its /Contents, zero-padded after the DER).
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader
    [embedded] = PdfFileReader(io.BytesIO(sealed)).embedded_signatures
    contents = embedded.sig_object["/Contents"]
    assert bytes(contents).startswith(row.signature) and not bytes(contents)[len(row.signature):].strip(b"\0")
    out = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert out.exit_code == 0, out.output


def test_signing_any_file_gives_a_detached_cms_that_openssl_accepts(app, client, zhangsan_key, token,
                                                                    authorized_seal, tmp_path):
    """``openssl cms -verify -binary -content FILE -inform DER -CAfile CHAIN`` (the issue's contract)."""
    from idp.seals.trust import chain_certificates

    data = b"approval decision \x00\x01 binary bytes\n" * 1000
    r = call(app, client, zhangsan_key, token, "POST", f"/api/seals/{authorized_seal.id}/sign", data=data,
             content_type="application/octet-stream")
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    assert r.mimetype == "application/pkcs7-signature"
    (tmp_path / "file.bin").write_bytes(data)
    (tmp_path / "file.bin.p7s").write_bytes(r.data)
    (tmp_path / "chain.pem").write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in chain_certificates()))
    ok = subprocess.run(["openssl", "cms", "-verify", "-binary", "-content", str(tmp_path / "file.bin"),
                         "-inform", "DER", "-in", str(tmp_path / "file.bin.p7s"), "-CAfile", str(tmp_path / "chain.pem"),
                         "-out", "/dev/null"], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    [row] = applications()
    assert row.kind == "cms" and row.signature == r.data


def _assert_refused(app, r, code, status=403):
    assert r.status_code == status, r.get_data(as_text=True)[:300]
    assert r.json["error"] == code
    assert applications() == []
    assert code in [e.detail["reason"] for e in events("seal.apply_refused")]


def test_an_official_not_authorized_for_the_seal_is_refused(app, client, zhangsan_key, token, seal):
    r = call(app, client, zhangsan_key, token, "POST", f"/api/seals/{seal.id}/apply", data=make_pdf())
    _assert_refused(app, r, "not_authorized")


def test_a_suspended_seal_is_refused(app, client, zhangsan_key, token, authorized_seal):
    from idp.seals.service import suspend

    suspend(authorized_seal.id, actor="operator")
    r = call(app, client, zhangsan_key, token, "POST", f"/api/seals/{authorized_seal.id}/sign", data=b"x",
             content_type="application/octet-stream")
    _assert_refused(app, r, "seal_suspended")


def test_a_revoked_official_certificate_stops_its_token_at_once(app, client, zhangsan_key, token, authorized_seal):
    from idp.pki.service import revoke_certificate

    serial = format(zhangsan_key.certificate().serial_number, "x") if hasattr(zhangsan_key, "certificate") else None
    if serial is None:
        from cryptography import x509
        import base64
        serial = format(x509.load_der_x509_certificate(base64.b64decode(zhangsan_key.x5c()[0])).serial_number, "x")
    revoke_certificate(serial, "keyCompromise")  # revokes the tokens bound to the certificate's key
    r = call(app, client, zhangsan_key, token, "POST", f"/api/seals/{authorized_seal.id}/apply", data=make_pdf())
    assert r.status_code == 401 and r.json["error"] == "invalid_token", r.get_data(as_text=True)[:300]
    assert applications() == []


def test_the_seal_rule_checks_the_certificate_itself(app, client, zhangsan_key, token, authorized_seal):
    """Besides the token: a certificate marked revoked while its token still lives (a revocation by
    some other way than ``idp pki revoke``) refuses the seal with its own reason."""
    import base64

    from cryptography import x509

    from idp.db import db
    from idp.pki.models import Certificate
    from idp.pki.service import normalize_serial

    serial = format(x509.load_der_x509_certificate(base64.b64decode(zhangsan_key.x5c()[0])).serial_number, "x")
    assert Certificate.query.filter(Certificate.serial == normalize_serial(serial)).update(
        {"status": "revoked", "revoked_at": db.func.now(), "revocation_reason": "keyCompromise"},
        synchronize_session=False) == 1
    db.session.commit()
    r = call(app, client, zhangsan_key, token, "POST", f"/api/seals/{authorized_seal.id}/apply", data=make_pdf())
    _assert_refused(app, r, "certificate_revoked")


def test_a_stolen_token_without_the_key_signs_nothing(app, client, token, authorized_seal):
    """RFC 9449 §7.1: the token alone (as Bearer, or with a proof by another key) is refused."""
    r = client.post(f"/api/seals/{authorized_seal.id}/apply", data=make_pdf(), content_type="application/pdf",
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json["error"] == "invalid_token"
    assert applications() == []


def test_a_level_2_token_is_refused(app, client, authorized_seal, tokens):
    """A citizen-style access token (password sign-in, Bearer) cannot reach the seal API."""
    r = client.post(f"/api/seals/{authorized_seal.id}/apply", data=make_pdf(), content_type="application/pdf",
                    headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 401
    assert applications() == []


def test_each_sealed_pdf_asks_the_tsa_for_one_token(app, client, zhangsan_key, token, authorized_seal):
    """pyHanko sizes the signature with a dry run that needs a token; that one is kept per TSA and
    process, so after the first PDF each application records exactly one TSA serial (RFC 3161 §2.4.2),
    the one embedded in the signature."""
    from idp.seals.models import IssuedTimestamp

    def issued():
        return {r.serial for r in db.session.execute(select(IssuedTimestamp)).scalars()}

    path = f"/api/seals/{authorized_seal.id}/apply"
    assert call(app, client, zhangsan_key, token, "POST", path, data=make_pdf()).status_code == 200
    before = issued()
    for _ in range(2):
        assert call(app, client, zhangsan_key, token, "POST", path, data=make_pdf()).status_code == 200
    new = issued() - before
    assert new == {row.tsa_serial for row in applications()[1:]} and len(new) == 2


def test_bad_input_gets_a_clear_error_and_nothing_is_recorded(app, client, zhangsan_key, token, authorized_seal):
    r = call(app, client, zhangsan_key, token, "POST", f"/api/seals/{authorized_seal.id}/apply", data=b"not a pdf")
    assert r.status_code == 400 and r.json["error_description"]
    r = call(app, client, zhangsan_key, token, "POST", f"/api/seals/{authorized_seal.id}/apply", data=make_pdf(),
             query={"page": 7})
    assert r.status_code == 400 and "7" in r.json["error_description"]
    r = call(app, client, zhangsan_key, token, "POST", f"/api/seals/{authorized_seal.id}/apply", data=make_pdf(),
             query={"x": "left"})
    assert r.status_code == 400
    assert applications() == []


@pytest.mark.parametrize("lang, expected", [
    ("zh-CN", ("“x”必须是数字。", "请将文档作为请求正文发送。", "请将文档作为 multipart 表单字段“file”发送。")),
    ("en", ("'x' must be a number.", "Send the document as the request body.",
            "Send the document as the multipart field 'file'.")),
])
def test_the_apis_malformed_request_refusals_speak_the_asked_language(app, client, zhangsan_key, token,
                                                                      authorized_seal, lang, expected):
    """The seal API's own refusals of a malformed request follow Accept-Language (RFC 9110 §12.5.4), like
    its other refusals: not a number, no body, no multipart ``file``."""
    path = f"/api/seals/{authorized_seal.id}/apply"
    not_a_number = call(app, client, zhangsan_key, token, "POST", path, data=make_pdf(), query={"x": "left"},
                        lang=lang)
    no_body = call(app, client, zhangsan_key, token, "POST", path, data=b"", lang=lang)
    no_file = app.test_client().post("/api/seals/verify", data={}, content_type="multipart/form-data",
                                     headers={"Accept-Language": lang})
    got = []
    for r in (not_a_number, no_body, no_file):
        assert r.status_code == 400 and r.json["error"] == "invalid_request", r.json
        got.append(r.json["error_description"])
    assert tuple(got) == expected
    assert applications() == []


# --- the browser ------------------------------------------------------------------------------------

def cert_login(client, key):
    import base64

    from cryptography import x509
    cert = x509.load_der_x509_certificate(base64.b64decode(key.x5c()[0]))
    pem = quote(cert.public_bytes(Encoding.PEM).decode(), safe="")
    return client.get("/login/certificate?next=/seals/apply&lang=en",
                      headers={"X-SSL-Client-Cert": pem, "X-SSL-Client-Verify": "SUCCESS"},
                      environ_base={"REMOTE_ADDR": TRUSTED})


def _csrf(html: str) -> str:
    import re
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def test_the_sealing_page_needs_a_fresh_certificate_sign_in(app, client, zhangsan_key, authorized_seal):
    import io

    r = cert_login(client, zhangsan_key)
    assert r.status_code == 303
    page = client.get("/seals/apply?lang=en")
    assert page.status_code == 200 and authorized_seal.name in page.get_data(as_text=True)
    doc = make_pdf()
    form = {"csrf_token": _csrf(page.get_data(as_text=True)), "seal": str(authorized_seal.id),
            "document": (io.BytesIO(doc), "批文.pdf"), "page": "1", "x": "400", "y": "100"}
    r = client.post("/seals/apply?lang=en", data=form, content_type="multipart/form-data")
    assert r.status_code == 200, r.get_data(as_text=True)[:800]
    assert r.mimetype == "application/pdf" and "attachment" in r.headers["Content-Disposition"]
    # A Chinese file name travels as RFC 8187 filename*; the header itself must be Latin-1 (PEP 3333),
    # or a WSGI server (PEP 3333) refuses the response after the seal was applied.
    disposition = r.headers["Content-Disposition"]
    disposition.encode("latin-1")
    assert "filename*=UTF-8''%E6%89%B9%E6%96%87-sealed.pdf" in disposition, disposition
    [row] = applications()
    assert row.channel == "browser"

    # Later than SEAL_FRESH_LOGIN_SECONDS: sign in with the certificate again.
    from idp.sessions.models import SsoSession
    s = db.session.execute(select(SsoSession)).scalar_one()
    s.auth_time = s.auth_time - dt.timedelta(seconds=app.config["SEAL_FRESH_LOGIN_SECONDS"] + 1)
    db.session.commit()
    page = client.get("/seals/apply?lang=en").get_data(as_text=True)
    assert "/login/certificate" in page
    form["document"] = (io.BytesIO(doc), "批文.pdf")
    r = client.post("/seals/apply?lang=en", data=form, content_type="multipart/form-data")
    assert r.status_code == 401 and len(applications()) == 1


def test_a_password_session_cannot_seal_in_the_browser(app, client, browser, user, authorized_seal):
    browser.login()
    page = client.get("/seals/apply?lang=en").get_data(as_text=True)
    assert "not authorized" in page or "/login/certificate" in page
    assert applications() == []


def test_the_public_verification_page_and_api(app, client, zhangsan_key, token, authorized_seal):
    import io

    sealed = call(app, client, zhangsan_key, token, "POST", f"/api/seals/{authorized_seal.id}/apply",
                  data=make_pdf()).data
    fresh = app.test_client()  # nobody signed in
    r = fresh.post("/api/seals/verify", data={"file": (io.BytesIO(sealed), "a.pdf")},
                   content_type="multipart/form-data")
    assert r.status_code == 200 and r.json["verdict"] == "valid"
    tampered = bytearray(sealed)
    i = sealed.index(b"Approval document")
    tampered[i] ^= 0x01
    r = fresh.post("/api/seals/verify", data={"file": (io.BytesIO(bytes(tampered)), "a.pdf")},
                   content_type="multipart/form-data")
    assert r.json["verdict"] == "invalid" and r.json["signatures"][0]["reasons"]
    page = fresh.get("/seals/verify?lang=en")
    form = {"csrf_token": _csrf(page.get_data(as_text=True)), "document": (io.BytesIO(sealed), "a.pdf")}
    html = fresh.post("/seals/verify?lang=en", data=form, content_type="multipart/form-data").get_data(as_text=True)
    assert 'data-verdict="valid"' in html and authorized_seal.name in html and "张三" in html


# --- sealctl's language (clients/sealctl/lang.py): one rule for its messages and the hub's answers ---

def _sealctl_via(app, client, monkeypatch):
    """``sealctl``'s HTTP calls answered by this app in-process (requests → the Flask test client)."""
    import requests as real_requests
    from urllib.parse import urlsplit

    from clients.sealctl import hub as sealctl_hub

    def request(method, url, headers=None, params=None, data=None, timeout=None):
        r = client.open(urlsplit(url).path, method=method, headers=headers, query_string=params, data=data)
        resp = real_requests.Response()
        resp.status_code, resp._content = r.status_code, r.data
        resp.headers.update(r.headers)
        return resp

    monkeypatch.setattr(sealctl_hub.requests, "request", request)


def _sealctl(tmp_path, *args) -> str:
    """Run ``sealctl`` (its ``main``) and return what it printed on stderr."""
    import contextlib
    import io

    from clients.sealctl.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["--state", str(tmp_path / "state"), *args])
    assert code == 1, err.getvalue()
    return err.getvalue()


@pytest.mark.parametrize("setting, expect_seal, expect_dpop", [
    ({"args": ["--lang", "en"]}, "You are not authorized to apply the seal", "refused: "),
    ({"env": {"SEALCTL_LANG": "en"}}, "You are not authorized to apply the seal", "refused: "),
    ({"args": ["--lang", "zh"]}, "您未获授权使用印章", "/api/official 被拒绝："),
    ({"env": {"LANG": "zh_CN.UTF-8"}}, "您未获授权使用印章", "/api/official 被拒绝："),
    ({}, "您未获授权使用印章", "/api/official 被拒绝："),
])
def test_sealctl_speaks_one_language_for_seal_and_dpop_refusals(app, client, zhangsan_key, token, tool, seal,
                                                                 monkeypatch, tmp_path, setting, expect_seal,
                                                                 expect_dpop):
    """One rule (``--lang``, ``SEALCTL_LANG``, the locale, else Chinese) for the tool's messages and the
    seal refusals the hub writes in the language asked with Accept-Language (RFC 9110 §12.5.4); a DPoP
    refusal (RFC 9449 §7.1) shows the hub's own description (its detail) with the error code, framed in
    the tool's language."""
    import time

    from clients.sealctl import hub as sealctl_hub
    from tests.pki.conftest import P12_PASSWORD as PASSWORD

    for name in ("SEALCTL_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in setting.get("env", {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SEALCTL_PASSWORD", PASSWORD)
    _sealctl_via(app, client, monkeypatch)
    state = sealctl_hub.State(str(tmp_path / "state"))
    state.save("token.json", {"hub": app.config["ISSUER"], "access_token": token,
                              "expires_at": int(time.time()) + 600, "client_id": tool})
    state.save("key.json", zhangsan_key.reference())
    lang_args = setting.get("args", [])
    doc = tmp_path / "a.pdf"
    doc.write_bytes(make_pdf())

    seal_refusal = _sealctl(tmp_path, *lang_args, "apply", "--seal", seal.id, "--in", doc, "--out", tmp_path / "o.pdf")
    assert expect_seal in seal_refusal, seal_refusal

    real_proof = sealctl_hub.dpop_proof
    monkeypatch.setattr(sealctl_hub, "dpop_proof",  # a proof for another URL (RFC 9449 §4.3 htu)
                        lambda key, method, url, tok=None, nonce=None: real_proof(key, method, url + "/elsewhere", tok,
                                                                                  nonce))
    dpop_refusal = _sealctl(tmp_path, *lang_args, "whoami")
    assert expect_dpop in dpop_refusal, dpop_refusal
    if expect_dpop == "refused: ":  # English: the hub's own description, no Chinese at all
        assert "/api/official refused: " in dpop_refusal and not any("\u4e00" <= ch <= "\u9fff" for ch in
                                                                     seal_refusal + dpop_refusal)
    else:  # the tool's Chinese sentence, and the hub's English detail (which URL the proof was for) kept
        assert dpop_refusal.rstrip().endswith("；invalid_dpop_proof）") and "htu" in dpop_refusal, dpop_refusal
        assert "DPoP 证明无效" in dpop_refusal and "refused" not in seal_refusal + dpop_refusal

    monkeypatch.delenv("SEALCTL_PASSWORD")
    own = _sealctl(tmp_path, *lang_args, "whoami")  # the tool's own message, no terminal for a prompt
    assert ("password is needed" in own) == (expect_dpop == "refused: "), own


def test_the_sealing_page_measures_the_chosen_page_for_its_placer(app, client, zhangsan_key, authorized_seal):
    """POST /seals/apply/page (the sealing form's fields, CSRF included): the chosen page's size and
    /Rotate (ISO 32000-1 §7.7.3.3), and every page's in ``geometry`` (one upload for all pages), which
    the page's outline takes; the page itself carries each seal's stamp box per rotation (data-stamps);
    anonymous or invalid: JSON errors."""
    import html
    import io
    import json
    import re

    doc = make_pdf(pages=2, media_box=(0, 0, 1191, 842), rotate=90)
    nobody = app.test_client()
    anonymous = nobody.post("/seals/apply/page", content_type="multipart/form-data",
                            data={"csrf_token": _csrf(nobody.get("/seals/verify").get_data(as_text=True)),
                                  "document": (io.BytesIO(doc), "a.pdf")})
    assert anonymous.status_code == 401 and anonymous.json["error"] == "login_required"

    assert cert_login(client, zhangsan_key).status_code == 303
    page = client.get("/seals/apply?lang=en").get_data(as_text=True)
    assert 'data-measure="/seals/apply/page"' in page
    stamps = json.loads(html.unescape(re.search(r"data-stamps='([^']*)'", page).group(1)))
    assert stamps == {str(authorized_seal.id): {r: [119, 119] for r in ("0", "90", "180", "270")}}  # a round seal
    token = _csrf(page)
    r = client.post("/seals/apply/page", data={"csrf_token": token, "document": (io.BytesIO(doc), "a.pdf"),
                                               "page": "1"}, content_type="multipart/form-data")
    every = [{"page": n, "width": 1191, "height": 842, "rotate": 90} for n in (1, 2)]
    assert r.status_code == 200 and r.json == {"page": 1, "pages": 2, "width": 1191, "height": 842, "rotate": 90,
                                               "geometry": every}
    r = client.post("/seals/apply/page?lang=en", data={"csrf_token": token, "document": (io.BytesIO(doc), "a.pdf"),
                                                       "page": "3"}, content_type="multipart/form-data")
    assert r.status_code == 400 and r.json["error"] == "page_out_of_range" and "2 page" in r.json["error_description"]
    r = client.post("/seals/apply/page", data={"document": (io.BytesIO(doc), "a.pdf")},
                    content_type="multipart/form-data")  # no CSRF token: refused before the view
    assert r.status_code == 400 and '"rotate"' not in r.get_data(as_text=True)
    assert applications() == []
