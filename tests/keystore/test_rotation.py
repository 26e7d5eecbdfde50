"""Signing keys: JWKS contents (RFC 7517), rotation, retirement, and pick-up without a restart."""
from __future__ import annotations

import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp import create_app
from tests.conftest import _config, basic, make_rp

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def test_jwks_publishes_public_members_with_kid_alg_use(client):
    """RFC 7517 §4: each key has kid, alg and use; no private members are ever published."""
    keys = client.get("/jwks.json").get_json()["keys"]
    assert {k["alg"] for k in keys} == {"RS256", "ES256"}
    for k in keys:
        assert k["kid"] and k["use"] == "sig"
        assert not PRIVATE_MEMBERS & set(k)
    rsa = next(k for k in keys if k["kty"] == "RSA")
    import base64

    n = base64.urlsafe_b64decode(rsa["n"] + "==")
    assert len(n) * 8 >= 2048


def _kids(client) -> set[str]:
    return {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}


def _token(client, rp) -> str:
    return client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp)).get_json()["access_token"]


def _shift_index(instance, seconds: int) -> None:
    """Move every time in keys.json back by ``seconds``: time passing, without sleeping."""
    index_path = instance / "keys" / "signing" / "keys.json"
    index = json.loads(index_path.read_text())
    for k in index["keys"]:
        for field in ("created_at", "not_before", "retired_at", "revoked_at"):
            if k.get(field) is not None:
                k[field] -= seconds
    index_path.write_text(json.dumps(index))


def test_rotation_publishes_new_key_before_it_signs(app, client, runner):
    """A rotation publishes the new key at once but it signs only from ``not_before`` = now +
    IDP_KEYS_PUBLISH_AHEAD; until then the old key signs (OIDC Core §10.1.1: a signer must publish a
    key before using it). Changed contract: before, the new key signed at once."""
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    old_token = _token(client, rp)
    before = _kids(client)
    started = time.time()
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    rotated = {k["kid"] for k in out["rotated"]}
    ahead = app.config["KEYS_PUBLISH_AHEAD"]
    assert ahead >= 2 * 2 + 1  # the default covers the production reload interval twice
    for k in out["rotated"]:
        assert started + ahead <= k["not_before"] <= time.time() + ahead + 1  # whole seconds, rounded up
    assert {k["kid"] for k in out["retired"]} == before
    assert {k["retired_at"] for k in out["retired"]} == {k["not_before"] for k in out["rotated"]}
    assert _kids(client) == before | rotated  # published at once
    pending_token = _token(client, rp)
    ks = KeySet.import_key_set(client.get("/jwks.json").get_json())
    assert jwt.decode(pending_token, ks).header["kid"] in before  # the old key still signs
    listing = {k["kid"]: k for k in json.loads(runner.invoke(args=["keys", "list"]).output)}
    assert {listing[kid]["status"] for kid in rotated} == {"pending"}
    assert {listing[kid]["status"] for kid in before} == {"active"}
    # At not_before the new key signs: the store decides per call from its clock, no reload needed.
    store = app.extensions["idp.keystore"]
    store.clock = lambda: time.time() + ahead + 1
    new_token = _token(client, rp)
    assert jwt.decode(new_token, ks).header["kid"] in rotated
    assert jwt.decode(old_token, ks).header["kid"] in before  # tokens of the old key still verify
    store.clock = time.time


def test_keys_list_shows_every_status_with_its_times(app, client, runner, instance):
    """``idp keys list``: pending → active → retired (published for the token grace) → expired."""
    from idp.keystore.service import token_grace

    before = _kids(client)
    rotated = {k["kid"] for k in json.loads(runner.invoke(args=["keys", "rotate"]).output)["rotated"]}
    ahead, grace = app.config["KEYS_PUBLISH_AHEAD"], token_grace(app.config)

    def listing():
        return {k["kid"]: k for k in json.loads(runner.invoke(args=["keys", "list"]).output)}

    first = listing()
    for kid in rotated:
        k = first[kid]
        assert (k["status"], k["signing"], k["published"], k["retired_at"]) == ("pending", False, True, None)
    for kid in before:
        k = first[kid]
        assert (k["status"], k["signing"], k["published"]) == ("active", True, True)
        assert k["unpublished_at"] == k["retired_at"] + grace
    _shift_index(instance, ahead + 1)
    second = listing()
    assert {second[kid]["status"] for kid in rotated} == {"active"}
    assert {(second[kid]["status"], second[kid]["signing"]) for kid in before} == {("retired", False)}
    _shift_index(instance, grace)
    third = listing()
    assert {(third[kid]["status"], third[kid]["published"]) for kid in before} == {("expired", False)}


def test_retired_key_leaves_jwks_after_its_tokens_expire(app, client, runner, instance):
    """Retired keys are published for the longest token lifetime (+ leeway) after they stop signing,
    then dropped and prunable (RFC 7517 §4.5: a kid names a key still in use for verification)."""
    from idp.keystore.service import token_grace

    before = _kids(client)
    runner.invoke(args=["keys", "rotate"])
    assert before <= _kids(client)
    assert json.loads(runner.invoke(args=["keys", "prune"]).output)["deleted"] == []  # still needed
    _shift_index(instance, app.config["KEYS_PUBLISH_AHEAD"] + token_grace(app.config) - 1)
    assert before <= _kids(client)  # a second before the grace ends: still published
    assert json.loads(runner.invoke(args=["keys", "prune"]).output)["deleted"] == []
    _shift_index(instance, 2)
    now_published = _kids(client)
    assert not before & now_published and len(now_published) == 2
    pruned = json.loads(runner.invoke(args=["keys", "prune"]).output)["deleted"]
    assert set(pruned) == before
    for kid in before:
        assert not (instance / "keys" / "signing" / f"{kid}.pem").exists()


def test_other_node_sees_rotation_without_restart(instance):
    """Two app instances sharing keys/: a rotation on one is published by the other at once and used
    by it from ``not_before``."""
    node_a = create_app(_config(instance))
    node_b = create_app(_config(instance))
    with node_b.app_context():
        before = {k["kid"] for k in node_b.test_client().get("/jwks.json").get_json()["keys"]}
    with node_a.app_context():
        out = json.loads(node_a.test_cli_runner().invoke(args=["keys", "rotate"]).output)["rotated"]
        rotated = {k["kid"] for k in out}
    with node_b.app_context():
        after = {k["kid"] for k in node_b.test_client().get("/jwks.json").get_json()["keys"]}
        assert rotated <= after and before <= after
        store = node_b.extensions["idp.keystore"]
        assert store.signing_key("ES256").kid in before
        store.clock = lambda: max(k["not_before"] for k in out)
        assert store.signing_key("ES256").kid in rotated


def test_rotate_now_signs_at_once_and_keeps_old_published(app, client, runner):
    """``idp keys rotate --now`` (urgent, not compromised): the new key signs at once; the old key
    stays published for the token grace so tokens it signed keep validating."""
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    old_token = _token(client, rp)
    before = _kids(client)
    out = json.loads(runner.invoke(args=["keys", "rotate", "--now"]).output)
    rotated = {k["kid"] for k in out["rotated"]}
    assert all(k["not_before"] <= time.time() for k in out["rotated"]) and out["revoked"] == []
    ks = KeySet.import_key_set(client.get("/jwks.json").get_json())
    assert jwt.decode(_token(client, rp), ks).header["kid"] in rotated
    assert jwt.decode(old_token, ks).header["kid"] in before
    assert {k["status"] for k in json.loads(runner.invoke(args=["keys", "list"]).output) if k["kid"] in before} == {"retired"}


def test_rotate_revoke_old_withdraws_compromised_keys_at_once(app, client, runner, instance):
    """``idp keys rotate --revoke-old`` (a compromised key): new keys sign at once, the old ones leave
    the JWKS at once and their private keys are deleted, so a token forged with them (or signed before)
    no longer validates (RFC 7517 §4.5); each step is audited."""
    from sqlalchemy import select

    from idp.audit.models import AuditEvent
    from idp.db import db
    from idp.keystore.jwt import verify_own_jwt

    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    old_token = _token(client, rp)
    assert verify_own_jwt(old_token) is not None
    before = _kids(client)
    result = runner.invoke(args=["keys", "rotate", "--revoke-old"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    rotated = {k["kid"] for k in out["rotated"]}
    assert {k["kid"] for k in out["revoked"]} == before
    assert _kids(client) == rotated
    assert verify_own_jwt(old_token) is None
    assert jwt.decode(_token(client, rp), KeySet.import_key_set(client.get("/jwks.json").get_json())).header["kid"] in rotated
    for kid in before:
        assert not (instance / "keys" / "signing" / f"{kid}.pem").exists()
    listing = {k["kid"]: k for k in json.loads(runner.invoke(args=["keys", "list"]).output)}
    assert {(listing[kid]["status"], listing[kid]["published"]) for kid in before} == {("revoked", False)}
    events = db.session.execute(select(AuditEvent.action, AuditEvent.target)).all()
    assert {t for a, t in events if a == "key.revoked"} == {f"key:{kid}" for kid in before}
    assert {t for a, t in events if a == "key.rotated"} == {f"key:{kid}" for kid in rotated}
    assert set(json.loads(runner.invoke(args=["keys", "prune"]).output)["deleted"]) == before
    assert {k["kid"] for k in json.loads(runner.invoke(args=["keys", "list"]).output)} == rotated


def test_rotation_is_audited(app, runner):
    """Each change to the keys is an audit event: the new key (with its start) and the retired one."""
    from sqlalchemy import select

    from idp.audit.models import AuditEvent
    from idp.db import db

    out = json.loads(runner.invoke(args=["keys", "rotate", "--alg", "ES256"]).output)
    rows = {r.action: r for r in db.session.execute(select(AuditEvent)).scalars()}
    assert rows["key.rotated"].target == f"key:{out['rotated'][0]['kid']}"
    assert rows["key.rotated"].detail["not_before"] == out["rotated"][0]["not_before"]
    assert rows["key.retired"].target == f"key:{out['retired'][0]['kid']}"
    assert rows["key.retired"].detail["retired_at"] == out["rotated"][0]["not_before"]


def test_publish_ahead_shorter_than_two_reload_intervals_is_refused(tmp_path):
    """A publication delay that a process's reload interval could outlast would reopen the window."""
    from idp.config import ConfigError

    with pytest.raises(ConfigError, match="KEYS_PUBLISH_AHEAD"):
        create_app(_config(tmp_path, KEYS_RELOAD_INTERVAL=2, KEYS_PUBLISH_AHEAD=4), load_keys=False)
    create_app(_config(tmp_path, KEYS_RELOAD_INTERVAL=2, KEYS_PUBLISH_AHEAD=5), load_keys=False)


def test_encrypted_keys_need_the_passphrase(tmp_path):
    """Private keys are encrypted at rest with IDP_KEYS_PASSPHRASE and unusable without it."""
    from idp.keystore.service import ensure_keys
    from idp.keystore.signing import KeyStoreError

    cfg = _config(tmp_path, KEYS_PASSPHRASE="s3cret-passphrase")
    app = create_app(cfg, load_keys=False)
    ensure_keys(app.config)
    for pem in (tmp_path / "keys" / "signing").glob("*.pem"):
        assert b"ENCRYPTED PRIVATE KEY" in pem.read_bytes()
    assert b"s3cret" not in (tmp_path / "keys" / "data-key.json").read_bytes()
    with pytest.raises(KeyStoreError):
        create_app(_config(tmp_path))
    with pytest.raises(Exception, match="passphrase|PASSPHRASE"):
        create_app(_config(tmp_path, KEYS_PASSPHRASE="wrong-passphrase"))
    create_app(cfg)  # the right one works


def _rsa_modulus_bytes(jwk: dict) -> int:
    import base64

    return len(base64.urlsafe_b64decode(jwk["n"] + "=="))


@pytest.mark.parametrize("env, bits", [(None, 3072), ("2048", 2048)])
def test_rotation_makes_rs256_keys_of_the_configured_size(instance, monkeypatch, env, bits):
    """IDP_SIGNING_RSA_BITS sizes the RS256 keys made from then on; keys made before keep their size
    (RFC 7518 §3.3: at least 2048 bits; RFC 7518 §6.3.1.1: ``n`` is the modulus, big-endian)."""
    if env is not None:
        monkeypatch.setenv("IDP_SIGNING_RSA_BITS", env)
    app = create_app(_config(instance))
    assert app.config["SIGNING_RSA_BITS"] == bits
    client, runner = app.test_client(), app.test_cli_runner()
    before = {k["kid"]: k for k in client.get("/jwks.json").get_json()["keys"] if k["kty"] == "RSA"}
    assert [_rsa_modulus_bytes(k) for k in before.values()] == [384]  # made by the default, 3072 bits
    with app.app_context():
        result = runner.invoke(args=["keys", "rotate", "--alg", "RS256"])
        assert result.exit_code == 0, result.output
        (new_kid,) = [k["kid"] for k in json.loads(result.output)["rotated"]]
        listing = {k["kid"]: k for k in json.loads(runner.invoke(args=["keys", "list"]).output)}
    jwks = {k["kid"]: k for k in client.get("/jwks.json").get_json()["keys"]}
    assert _rsa_modulus_bytes(jwks[new_kid]) == bits // 8
    assert all(_rsa_modulus_bytes(jwks[kid]) == 384 for kid in before)  # the old key is unchanged
    assert listing[new_kid]["rsa_bits"] == bits
    assert {listing[kid]["rsa_bits"] for kid in before} == {3072}
    assert {k["rsa_bits"] for k in listing.values() if k["alg"] == "ES256"} == {None}


@pytest.mark.parametrize("value", ["1024", "2047", "8192", "abc"])
def test_unsupported_rsa_key_size_is_refused(tmp_path, monkeypatch, value):
    """RFC 7518 §3.3: an RS256 key of less than 2048 bits MUST NOT be used; sizes other than 2048, 3072
    and 4096 are refused at start-up with a one-line reason."""
    from idp.config import ConfigError

    monkeypatch.setenv("IDP_SIGNING_RSA_BITS", value)
    expected = "IDP_SIGNING_RSA_BITS must be an integer" if value == "abc" else \
        "IDP_SIGNING_RSA_BITS must be 2048, 3072 or 4096"
    with pytest.raises(ConfigError, match=expected):
        create_app(_config(tmp_path), load_keys=False)
