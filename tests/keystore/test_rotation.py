"""Signing keys: JWKS contents (RFC 7517), rotation, retirement, and pick-up without a restart."""
from __future__ import annotations

import json
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


def test_rotation_publishes_new_key_at_once_and_keeps_old(app, client, runner):
    """A new key signs at once; the retired key stays published so tokens it signed still verify."""
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    old_token = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp)).get_json()["access_token"]
    before = {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    rotated = {k["kid"] for k in json.loads(result.output)["rotated"]}
    after = {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}
    assert after == before | rotated
    new_token = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp)).get_json()["access_token"]
    ks = KeySet.import_key_set(client.get("/jwks.json").get_json())
    assert jwt.decode(new_token, ks).header["kid"] in rotated
    assert jwt.decode(old_token, ks).header["kid"] in before
    listing = json.loads(runner.invoke(args=["keys", "list"]).output)
    assert {k["kid"] for k in listing if k["status"] == "retired"} == before


def test_retired_key_leaves_jwks_after_its_tokens_expire(app, client, runner, instance):
    """Retired keys are published for the longest token lifetime (+ leeway), then dropped and prunable."""
    from idp.keystore.service import token_grace

    before = {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}
    runner.invoke(args=["keys", "rotate"])
    assert before <= {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}
    assert json.loads(runner.invoke(args=["keys", "prune"]).output)["deleted"] == []  # still needed
    # Let the grace period pass: move the retirement back in time rather than sleeping.
    index_path = instance / "keys" / "signing" / "keys.json"
    index = json.loads(index_path.read_text())
    for k in index["keys"]:
        if k["retired_at"]:
            k["retired_at"] -= token_grace(app.config) + 1
    index_path.write_text(json.dumps(index))
    now_published = {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}
    assert not before & now_published and len(now_published) == 2
    pruned = json.loads(runner.invoke(args=["keys", "prune"]).output)["deleted"]
    assert set(pruned) == before
    for kid in before:
        assert not (instance / "keys" / "signing" / f"{kid}.pem").exists()


def test_other_node_sees_rotation_without_restart(instance):
    """Two app instances sharing keys/: a rotation on one is used and published by the other."""
    node_a = create_app(_config(instance))
    node_b = create_app(_config(instance))
    with node_b.app_context():
        before = {k["kid"] for k in node_b.test_client().get("/jwks.json").get_json()["keys"]}
    with node_a.app_context():
        rotated = {k["kid"] for k in json.loads(node_a.test_cli_runner().invoke(args=["keys", "rotate"]).output)["rotated"]}
    with node_b.app_context():
        after = {k["kid"] for k in node_b.test_client().get("/jwks.json").get_json()["keys"]}
        assert rotated <= after and before <= after
        store = node_b.extensions["idp.keystore"]
        assert store.signing_key("ES256").kid in rotated


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
