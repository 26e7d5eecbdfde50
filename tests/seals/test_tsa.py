"""The hub's timestamp authority (RFC 3161, RFC 5816), judged by ``openssl ts`` where it can be."""
from __future__ import annotations

import hashlib
import json
import re
import threading

import pytest
from asn1crypto import algos, tsp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.seals.seal_fixtures import ca_files, hub, openssl  # noqa: F401

QUERY = {"Content-Type": "application/timestamp-query"}


def post(client, body: bytes, headers=QUERY):
    return client.post("/tsa", data=body, headers=headers)


def reply(resp) -> tsp.TimeStampResp:
    from idp.seals.tsa import TimeStampResp  # the token is OPTIONAL (RFC 3161 §2.4.2)

    assert resp.headers["Content-Type"] == "application/timestamp-reply"
    return TimeStampResp.load(resp.data)


def query(tmp_path, *extra, data=b"document bytes\n", name="q.tsq"):
    """``openssl ts -query -data F … -out q.tsq``: returns (data file, request file)."""
    data_file = tmp_path / "data.bin"
    data_file.write_bytes(data)
    out = tmp_path / name
    r = openssl("ts", "-query", "-data", str(data_file), *extra, "-out", str(out))
    assert r.returncode == 0, r.stderr
    return data_file, out


def failure(resp) -> tuple[str, set]:
    status = reply(resp)["status"]
    return status["status"].native, set(status["fail_info"].native or ())


@pytest.fixture
def untrusted(client, hub, tmp_path):
    """GET /tsa/certificate.pem: the TSA's certificate, the issuing CA, the root."""
    resp = client.get("/tsa/certificate.pem")
    assert resp.status_code == 200
    path = tmp_path / "tsa-chain.pem"
    path.write_bytes(resp.data)
    return path


def test_openssl_request_granted_and_verified(client, hub, ca_files, untrusted, tmp_path):
    """RFC 3161 §2.4.1–2.4.2 / §3.4: an ``openssl ts -query`` POSTed to /tsa gets a granted reply that
    ``openssl ts -verify -data F -in r.tsr -CAfile root.pem -untrusted chain.pem`` accepts."""
    data_file, q = query(tmp_path, "-sha256", "-cert")
    resp = post(client, q.read_bytes())
    assert resp.status_code == 200
    r_file = tmp_path / "r.tsr"
    r_file.write_bytes(resp.data)
    text = openssl("ts", "-reply", "-in", str(r_file), "-text")
    assert text.returncode == 0, text.stderr
    out = text.stdout.decode()
    assert "Status: Granted." in out
    assert "Policy OID: 2.25.77094259346348185218404927771064258497" in out
    assert re.search(r"Accuracy: 0x01 seconds", out)
    root, _ = ca_files
    verify = openssl("ts", "-verify", "-data", str(data_file), "-in", str(r_file), "-CAfile", str(root),
                     "-untrusted", str(untrusted))
    assert verify.returncode == 0, verify.stderr
    assert b"Verification: OK" in verify.stdout
    # Another file's bytes: openssl refuses the same reply.
    other = tmp_path / "other.bin"
    other.write_bytes(b"document bytes!\n")
    refused = openssl("ts", "-verify", "-data", str(other), "-in", str(r_file), "-CAfile", str(root),
                      "-untrusted", str(untrusted))
    assert refused.returncode != 0 and b"message imprint mismatch" in refused.stderr


def test_nonce_echoed_and_imprint_kept(client, hub, tmp_path):
    """RFC 3161 §2.4.2: the nonce MUST be the request's; the messageImprint the same as the request's."""
    _, q = query(tmp_path, "-sha384", "-cert")
    request = tsp.TimeStampReq.load(q.read_bytes())
    info = reply(post(client, q.read_bytes()))["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    assert request["nonce"].native is not None
    assert info["nonce"].native == request["nonce"].native
    assert info["message_imprint"].native == request["message_imprint"].native
    assert info["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha384"


def test_signing_certificate_v2_and_cert_req(client, hub, tmp_path):
    """RFC 5816 §2.2.1: the token's signer names the TSA's certificate by ESSCertIDv2 (SHA-256);
    RFC 3161 §2.4.1: certReq true → the TSA's certificate is in the token, false → no certificates."""
    from idp.seals import tsa

    _, with_cert = query(tmp_path, "-sha256", "-cert", name="a.tsq")
    _, without = query(tmp_path, "-sha256", name="b.tsq")
    token = reply(post(client, with_cert.read_bytes()))["time_stamp_token"]["content"]
    signed_attrs = {a["type"].native: a["values"][0] for a in token["signer_infos"][0]["signed_attrs"]}
    assert signed_attrs["content_type"].native == "tst_info"
    cert_id = signed_attrs["signing_certificate_v2"]["certs"][0]
    tsa_der = tsa.current().certificate.public_bytes(Encoding.DER)
    assert cert_id["cert_hash"].native == hashlib.sha256(tsa_der).digest()
    certs = [c.chosen.dump() for c in token["certificates"]]
    assert tsa_der in certs
    bare = reply(post(client, without.read_bytes()))["time_stamp_token"]["content"]
    assert bare["certificates"].native is None


def test_sha1_refused_bad_alg(client, hub, tmp_path):
    """RFC 3161 §2.4.2: a hash the TSA does not accept → rejection, failInfo badAlg."""
    _, q = query(tmp_path, "-sha1", "-cert")
    resp = post(client, q.read_bytes())
    assert resp.status_code == 200
    assert failure(resp) == ("rejection", {"bad_alg"})
    assert reply(resp)["time_stamp_token"].native is None
    r_file = tmp_path / "r.tsr"
    r_file.write_bytes(resp.data)
    text = openssl("ts", "-reply", "-in", str(r_file), "-text")
    assert b"Status: Rejected." in text.stdout
    assert b"unrecognized or unsupported algorithm identifier" in text.stdout


def test_garbage_is_bad_data_format_never_500(client, hub):
    """RFC 3161 §2.4.2: a request that cannot be parsed → rejection, badDataFormat (not an HTTP error)."""
    for body in (b"", b"not a request", b"\x30\x03\x02\x01\x01", b"\x30\x82\xff\xff" + b"\x00" * 10):
        resp = post(client, body)
        assert resp.status_code == 200, body
        assert failure(resp) == ("rejection", {"bad_data_format"}), body
        assert "TimeStampReq" in reply(resp)["status"]["status_string"].native[0]


def _request(algorithm: str, digest: bytes, **extra) -> bytes:
    return tsp.TimeStampReq({"version": "v1", "message_imprint": tsp.MessageImprint({
        "hash_algorithm": algos.DigestAlgorithm({"algorithm": algorithm}), "hashed_message": digest}),
        "cert_req": True, **extra}).dump()


def test_imprint_length_must_match_algorithm(client, hub):
    """RFC 3161 §2.4.1: the hashed message's length must be the hash algorithm's → else badDataFormat."""
    assert failure(post(client, _request("sha256", b"\x01" * 20))) == ("rejection", {"bad_data_format"})
    assert failure(post(client, _request("sha512", b"\x01" * 32))) == ("rejection", {"bad_data_format"})
    assert failure(post(client, _request("sha512", b"\x01" * 64)))[0] == "granted"


def test_other_policy_unaccepted(client, hub, tmp_path):
    """RFC 3161 §2.4.1 reqPolicy: a policy other than ours → unacceptedPolicy; ours → granted."""
    _, q = query(tmp_path, "-sha256", "-tspolicy", "1.2.3.4", "-cert")
    assert failure(post(client, q.read_bytes())) == ("rejection", {"unaccepted_policy"})
    ours = _request("sha256", b"\x02" * 32, req_policy="2.25.77094259346348185218404927771064258497")
    assert failure(post(client, ours))[0] == "granted"


def test_serials_unique_and_recorded(client, hub, tmp_path):
    """RFC 3161 §2.4.2: serialNumber unique per TSA — each one is a row (primary key), ≥ 64 random bits."""
    from idp.db import db
    from idp.seals.models import IssuedTimestamp

    _, q = query(tmp_path, "-sha256", "-cert")
    serials = []
    for _ in range(12):
        info = reply(post(client, q.read_bytes()))["time_stamp_token"]["content"]["encap_content_info"]
        serials.append(info["content"].parsed["serial_number"].native)
    assert len(set(serials)) == len(serials)
    assert all(s.bit_length() >= 64 for s in serials)
    rows = {r.serial: r for r in db.session.query(IssuedTimestamp)}
    assert {format(s, "x") for s in serials} <= set(rows)
    digest = tsp.TimeStampReq.load(q.read_bytes())["message_imprint"]["hashed_message"].native.hex()
    assert all(rows[format(s, "x")].message_imprint == digest for s in serials)


def test_content_type_and_size(client, hub, app):
    """RFC 3161 §3.4: only application/timestamp-query (415 otherwise, in words); bodies are bounded."""
    resp = post(client, _request("sha256", b"\x01" * 32), headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 415 and b"application/timestamp-query" in resp.data
    big = b"\x30" * (app.config["TSA_MAX_REQUEST_BYTES"] + 1)
    resp = post(client, big)
    assert resp.status_code == 413 and failure(resp) == ("rejection", {"bad_request"})


def test_public_page_and_certificate(client, hub):
    """GET /tsa explains the service; /tsa/certificate.pem is the TSA's certificate (critical
    extendedKeyUsage timeStamping only, RFC 3161 §2.3) then its CA chain."""
    page = client.get("/tsa")
    assert page.status_code == 200 and b"2.25.77094259346348185218404927771064258497" in page.data
    certs = x509.load_pem_x509_certificates(client.get("/tsa/certificate.pem").data)
    assert [c.subject for c in certs[1:]] == [a.certificate.subject for a in hub.chain()]
    eku = certs[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]


def test_revoked_tsa_stops_issuing(client, hub, tmp_path):
    """A revoked TSA certificate (on the CRL like any other) is not used: rejection, systemFailure."""
    from idp.pki.service import revoke_certificate
    from idp.seals import tsa

    revoke_certificate(format(tsa.current().certificate.serial_number, "x"), "keyCompromise")
    _, q = query(tmp_path, "-sha256", "-cert")
    assert failure(post(client, q.read_bytes())) == ("rejection", {"system_failure"})


def test_init_creates_the_tsa_once(app, runner):
    """`idp init` creates the TSA (reported as tsa_created), records its certificate (usage tsa) and
    audits it; a second run creates nothing."""
    from sqlalchemy import select

    from idp.audit.models import AuditEvent
    from idp.db import db
    from idp.pki.models import Certificate

    outs = [runner.invoke(args=["init"]) for _ in range(2)]
    assert all(o.exit_code == 0 for o in outs), outs[0].output
    created = [json.loads(o.stdout.strip().splitlines()[-1])["tsa_created"] for o in outs]
    assert len(created[0]) == 1 and created[1] == []
    rows = db.session.execute(select(Certificate).where(Certificate.usage == "tsa")).scalars().all()
    assert len(rows) == 1 and rows[0].person_id is None
    assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "tsa.created")).scalars().all()


def test_concurrent_creation_makes_one_tsa(app, tmp_path):
    """Several nodes running `idp init` together: the directory lock lets exactly one create the TSA."""
    from idp.pki import ca
    from idp.seals import tsa

    keys = tmp_path / "shared-keys"
    ca.create_missing(keys, "pass-phrase", key_type="ec-p256", base_url="http://127.0.0.1:5000", organization="O")
    auths = ca.load_authorities(keys)
    ca_key = auths.issuing.private_key("pass-phrase")
    results = []

    def run():
        results.append(tsa.create_missing(keys, "pass-phrase", key_type="ec-p256", issuing=auths.issuing,
                                          ca_key=ca_key, days=30, base_url="http://127.0.0.1:5000",
                                          organization="O"))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([r for r in results if r]) == 1
    key_file = next((keys / "tsa").glob("*.key.pem")).read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in key_file  # encrypted at rest with the passphrase


@pytest.mark.live
@pytest.mark.xdist_group("live-sqlite")
def test_live_hub_over_http(request, tmp_path):
    """RFC 3161 §3.4 over real HTTP: a live hub (``idp init`` made its TSA, ``idp serve``), the query
    from ``openssl ts -query``, the reply accepted by ``openssl ts -verify``."""
    import requests

    from tests.e2e.hub import shared_hub

    hub_ = shared_hub(request, "sqlite")
    data_file, q = query(tmp_path, "-sha512", "-cert")
    resp = requests.post(hub_.url("/tsa"), data=q.read_bytes(), headers=QUERY, timeout=30)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/timestamp-reply"
    (tmp_path / "r.tsr").write_bytes(resp.content)
    pem = requests.get(hub_.url("/tsa/certificate.pem"), timeout=30).content
    certs = x509.load_pem_x509_certificates(pem)
    (tmp_path / "root.pem").write_bytes(certs[-1].public_bytes(Encoding.PEM))
    (tmp_path / "chain.pem").write_bytes(pem)
    r = openssl("ts", "-verify", "-data", str(data_file), "-in", str(tmp_path / "r.tsr"),
                "-CAfile", str(tmp_path / "root.pem"), "-untrusted", str(tmp_path / "chain.pem"))
    assert r.returncode == 0, r.stderr
    wrong = requests.post(hub_.url("/tsa"), data=b"garbage", headers=QUERY, timeout=30)
    assert wrong.status_code == 200 and b"TimeStampReq" in wrong.content
