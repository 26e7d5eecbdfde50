"""Certificate login through a real nginx (issue 5, "Tests"): the shipped ``deploy/nginx/idp.conf``
in front of a live hub. nginx requests the client certificate in the TLS handshake (RFC 8446 §4.3.2
CertificateRequest) and forwards it; the hub trusts the forwarded header only from nginx's address and
validates the certificate itself.

nginx connects to the hub from 127.0.0.2 (``proxy_bind``) and the hub trusts only that address
(``IDP_TRUSTED_PROXIES=127.0.0.2``), so that this test, on 127.0.0.1, is "anyone else" when it talks to
the hub directly. Without nginx the module is skipped, and fails under CI=true.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.e2e.browser import parse_forms
from tests.e2e.hub import PASSWORD, start_hub
from tests.seals.live_support import idp_at_once, ok_json
from tests.services.nginx import require_nginx, start_nginx

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("live-nginx")]

LOA3 = "urn:idp:loa:3"
PROXY_ADDR = "127.0.0.2"
P12_PASSWORD = "p12-password-" + secrets.token_hex(4)


def _pem_files(p12_path, directory, name):
    key, cert, _ = pkcs12.load_key_and_certificates(p12_path.read_bytes(), P12_PASSWORD.encode())
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _stranger(directory):
    """A clientAuth certificate from a CA the hub does not trust: (cert.pem, key.pem)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "其他CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "某人")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = directory / "stranger.pem", directory / "stranger.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    require_nginx()  # before paying for a hub
    work = tmp_path_factory.mktemp("certlogin")
    (work / "hub").mkdir()
    hub, _ = start_hub(work / "hub", env={"IDP_TRUSTED_PROXIES": PROXY_ADDR})
    proxy = None
    try:
        # Each step's independent ``idp`` commands run in parallel (process start-up dominates each).
        users = ("wangwu", "lisi")
        client_args, rp = hub.client_args(name="市场监督管理局")
        steps = [
            [("users", "create", "--username", u, "--password", PASSWORD, "--name", "王五") for u in users]
            + [("departments", "create", "--code", "scjgj", "--name", "本溪市市场监督管理局"), client_args],
            [("officials", "add", "--username", u, "--department", "scjgj") for u in users],
            [("pki", "issue", "--username", u, "--out", str(work / f"{u}.p12"), "--password", P12_PASSWORD)
             for u in users],
        ]
        results = [[ok_json(r) for r in idp_at_once(hub, *step)] for step in steps]
        rp.update(results[0][-1])
        files = {u: (issued["serial"], _pem_files(work / f"{u}.p12", work, u)) for u, issued in zip(users, results[2])}
        revoked, chain = idp_at_once(hub, ("pki", "revoke", files["lisi"][0], "--reason", "keyCompromise"),
                                     ("pki", "ca-cert"))
        ok_json(revoked)
        assert chain.returncode == 0, chain.stderr
        (work / "chain.pem").write_text(chain.stdout)
        proxy = start_nginx(work / "nginx", hub.port, work / "chain.pem", proxy_bind=PROXY_ADDR)
        yield {"hub": hub, "nginx": proxy, "rp": rp, "official": files["wangwu"][1], "revoked": files["lisi"][1],
               "stranger": _stranger(work)}
    finally:
        if proxy is not None:
            proxy.stop()
        hub.stop()


def _session(setup, cert=None) -> requests.Session:
    http = requests.Session()
    http.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace ``verify`` (psf/requests#3829)
    http.verify = str(setup["nginx"].tls_ca)
    http.cert = tuple(map(str, cert)) if cert else None
    return http


def _reason(resp) -> str | None:
    marker = 'data-reason="'
    text = resp.text
    return text[text.index(marker) + len(marker):].split('"', 1)[0] if marker in text else None


def test_an_officials_certificate_through_nginx_gets_a_level_3_id_token(setup):
    """A subsite asks for acr_values urn:idp:loa:3 (OIDC Core §3.1.2.1); the official signs in with the
    certificate in the TLS handshake; the ID token says acr loa:3 and amr ["swk"] (RFC 8176 §2)."""
    hub, rp, base = setup["hub"], setup["rp"], setup["nginx"].base
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"response_type": "code", "client_id": rp["client_id"], "redirect_uri": rp["redirect_uri"],
              "scope": "openid profile", "state": "s1", "nonce": "n1", "acr_values": LOA3,
              "code_challenge": challenge, "code_challenge_method": "S256"}
    with _session(setup, setup["official"]) as http:
        resp = http.get(base + "/authorize?" + urlencode(params), allow_redirects=False, timeout=15)
        assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/login", resp.text[:300]
        next_url = parse_qs(urlsplit(resp.headers["Location"]).query)["next"][0]
        resp = http.get(base + "/login/certificate?" + urlencode({"next": next_url}), allow_redirects=False,
                        timeout=15)
        assert resp.status_code == 303 and resp.headers["Location"] == next_url, resp.text[:500]
        assert "idp_session" in http.cookies
        resp = http.get(urljoin(base, next_url), allow_redirects=False, timeout=15)
        forms = [f for f in parse_forms(resp.text) if any(n == "decision" for n, _ in f.buttons)]
        if resp.status_code == 200 and forms:  # consent (a subsite that is not first-party)
            resp = http.post(urljoin(base, forms[0].action), data={**forms[0].fields, "decision": "allow"},
                             allow_redirects=False, timeout=15)
        assert resp.status_code == 302, resp.text[:500]
        code = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
    token = requests.post(hub.url("/token"), auth=(rp["client_id"], rp["client_secret"]), timeout=15,
                          data={"grant_type": "authorization_code", "code": code, "redirect_uri": rp["redirect_uri"],
                                "code_verifier": verifier})
    assert token.status_code == 200, token.text
    keys = KeySet.import_key_set(requests.get(hub.url("/jwks.json"), timeout=15).json())
    claims = jwt.decode(token.json()["id_token"], keys).claims
    assert claims["acr"] == LOA3 and claims["amr"] == ["swk"] and claims["nonce"] == "n1"


def test_a_revoked_certificate_is_refused(setup):
    """nginx has no CRL here and lets the handshake through: the hub's own revocation check refuses."""
    with _session(setup, setup["revoked"]) as http:
        resp = http.get(setup["nginx"].base + "/login/certificate?lang=en", allow_redirects=False, timeout=15)
        assert resp.status_code == 403 and _reason(resp) == "revoked"
        assert "The certificate has been revoked." in resp.text and "idp_session" not in http.cookies


def test_a_certificate_from_an_unknown_ca_gets_the_hubs_reason(setup):
    """nginx's own check fails (status 495); the shipped error_page sends it to the hub, which names it."""
    with _session(setup, setup["stranger"]) as http:
        resp = http.get(setup["nginx"].base + "/login/certificate?lang=en", allow_redirects=False, timeout=15)
        assert resp.status_code == 403 and _reason(resp) == "unknown_ca", resp.text[:300]


def test_a_forged_header_sent_to_the_hub_directly_is_refused(setup):
    """The official's real certificate, forwarded by hand straight to the hub (not through nginx)."""
    pem = setup["official"][0].read_text()
    with requests.Session() as http:
        resp = http.get(setup["hub"].url("/login/certificate?lang=en"), allow_redirects=False, timeout=15,
                        headers={"X-SSL-Client-Cert": quote(pem, safe=""), "X-SSL-Client-Verify": "SUCCESS"})
        assert resp.status_code == 403 and _reason(resp) == "no_certificate" and "idp_session" not in http.cookies


def test_a_forged_header_sent_through_nginx_is_stripped(setup):
    """A client without a certificate sending the header itself: nginx replaces it with its own (empty)."""
    pem = setup["official"][0].read_text()
    with _session(setup) as http:
        resp = http.get(setup["nginx"].base + "/login/certificate?lang=en", allow_redirects=False, timeout=15,
                        headers={"X-SSL-Client-Cert": quote(pem, safe=""), "X-SSL-Client-Verify": "SUCCESS"})
        assert resp.status_code == 403 and _reason(resp) == "no_certificate" and "idp_session" not in http.cookies
        # and on any other path the headers never reach the hub either
        assert http.get(setup["nginx"].base + "/readyz", timeout=15).status_code == 200
