"""Server-provided DPoP nonces (RFC 9449 §8 at the token endpoint, §9 at resources), ``DPOP_NONCE=on``.

A proof without the hub's nonce is answered ``use_dpop_nonce`` with the nonce in ``DPoP-Nonce`` (400 at
/token, 401 with a ``DPoP`` challenge at UserInfo and the officials' API); the retry with it succeeds.
Nonces are stateless (``idp.oauth.dpop``): the current and the previous window's are accepted, older
ones and another hub's are not. Also the officials' API's one rule for bound tokens
(``tokens.sender_ok`` on the row's ``cnf_jkt``)."""
from __future__ import annotations

import os
import shutil
import time

import pytest
from joserfc.jwk import ECKey
from sqlalchemy import select, update

from clients.sealctl import hub as hubapi
from idp import create_app
from idp.audit.models import AuditEvent
from idp.config import ConfigError, load
from idp.db import db
from idp.keystore import datakey
from idp.oauth import dpop
from idp.oauth.models import Token
from idp.oauth.tokens import digest
from tests.conftest import _config, basic, make_rp
from tests.oauth.dpop_support import proof
from tests.oauth.official_support import key, quick_pkcs12, token_request, tool  # noqa: F401

LIFETIME = 3600  # long enough that a test's few requests never straddle two windows


def app_config_values() -> dict:
    return {"DPOP_NONCE": "on", "DPOP_NONCE_LIFETIME": LIFETIME}


@pytest.fixture
def app_config():
    return app_config_values()


@pytest.fixture
def dpop_key():
    return ECKey.generate_key("P-256")


@pytest.fixture
def cc(app):
    return make_rp(app, grant_types=["client_credentials"], redirect_uris=[])


def token_url(app) -> str:
    return app.config["ISSUER"] + "/token"


def ask(client, cc, dpop_value):
    return client.post("/token", data={"grant_type": "client_credentials"}, headers={**basic(cc), "DPoP": dpop_value})


def dpop_refusals() -> list[str]:
    rows = db.session.execute(select(AuditEvent).where(AuditEvent.action == "dpop.refused")).scalars()
    return [r.detail["reason"] for r in rows]


def official(client, token, proof_value):
    return client.get("/api/official", headers={"Authorization": f"DPoP {token}", "DPoP": proof_value})


@pytest.fixture
def official_token(app, client, key, tool):
    """A DPoP-bound level-3 token from the officials' grant, asked for with the nonce (§8)."""
    first = token_request(client, app, key, tool)
    nonce = first.headers["DPoP-Nonce"]
    r = token_request(client, app, key, tool, proof=hubapi.dpop_proof(key, "POST", token_url(app), nonce=nonce))
    assert r.status_code == 200, r.json
    return r.json["access_token"], r.headers["DPoP-Nonce"]


def test_token_endpoint_requires_the_nonce_then_issues(app, client, cc, dpop_key):
    """RFC 9449 §8: a proof without the server's nonce is 400 ``use_dpop_nonce`` with ``DPoP-Nonce``;
    the retry with that nonce (§8.1 ``nonce`` claim) gets a DPoP-bound token, its answer carrying a
    nonce again (§8.2); the lean path (idp.oauth.lean) declines the request, so this reaches the check."""
    r = ask(client, cc, proof(dpop_key, htu=token_url(app)))
    assert r.status_code == 400 and r.get_json()["error"] == "use_dpop_nonce", r.get_json()
    nonce = r.headers["DPoP-Nonce"]
    assert len(nonce) == 43 and "DPoP" not in r.headers.get("WWW-Authenticate", "")
    assert dpop_refusals() == []  # the protocol's first step, not an attack: not audited
    r = ask(client, cc, proof(dpop_key, htu=token_url(app), nonce=nonce))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["token_type"] == "DPoP" and r.headers["DPoP-Nonce"] == nonce


def test_a_bearer_request_is_unchanged(app, client, cc):
    """§8 concerns DPoP proofs only: a request without a ``DPoP`` header gets a Bearer token and no nonce."""
    r = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(cc))
    assert r.status_code == 200 and r.get_json()["token_type"] == "Bearer"
    assert "DPoP-Nonce" not in r.headers


def test_previous_window_accepted_older_refused(app, client, cc, dpop_key):
    """RFC 9449 §8.2 lets the server decide how long a nonce lives: here its window and the next one.
    A nonce of two windows ago is ``use_dpop_nonce`` again, with the current nonce to retry with."""
    nonce_key = app.extensions["idp.dpop_nonce_key"]
    window = int(time.time() // LIFETIME)
    r = ask(client, cc, proof(dpop_key, htu=token_url(app), nonce=dpop.make_nonce(nonce_key, window - 1)))
    assert r.status_code == 200, r.get_json()
    r = ask(client, cc, proof(dpop_key, htu=token_url(app), nonce=dpop.make_nonce(nonce_key, window - 2)))
    assert r.status_code == 400 and r.get_json()["error"] == "use_dpop_nonce"
    assert r.headers["DPoP-Nonce"] == dpop.current_nonce()
    assert dpop_refusals() == ["proof_nonce_invalid"]


def test_the_window_edges(app):
    """The acceptance rule at fixed times: a nonce handed out in window w works until the end of w + 1,
    whatever the node (only the shared key and the clock count)."""
    start = 1_800_000_000 // LIFETIME * LIFETIME
    nonce = dpop.current_nonce(now=start + 1)
    assert dpop.nonce_ok(nonce, now=start) and dpop.nonce_ok(nonce, now=start + 2 * LIFETIME - 1)
    assert not dpop.nonce_ok(nonce, now=start + 2 * LIFETIME)
    assert not dpop.nonce_ok(nonce, now=start - 1)  # a nonce from the future (the next window) is not one we gave


def test_another_hubs_nonce_is_refused(app, client, cc, dpop_key):
    """A nonce is made with this hub's key (derived from its data key): the same window's nonce under
    another key is refused (§8: the nonce is the server's, not the client's to invent)."""
    window = int(time.time() // LIFETIME)
    forged = dpop.make_nonce(os.urandom(32), window)
    r = ask(client, cc, proof(dpop_key, htu=token_url(app), nonce=forged))
    assert r.status_code == 400 and r.get_json()["error"] == "use_dpop_nonce"
    assert r.headers["DPoP-Nonce"] != forged


def test_a_bad_proof_is_still_invalid_dpop_proof(app, client, cc, dpop_key):
    """The nonce is checked last (§4.3 item 9 after the signature and claims): a proof for another URL
    is ``invalid_dpop_proof`` (§5), not a nonce round trip."""
    r = ask(client, cc, proof(dpop_key, htu=app.config["ISSUER"] + "/elsewhere"))
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_dpop_proof"


def test_officials_grant_and_api_require_the_nonce(app, client, key, tool):
    """The officials' tool's grant (RFC 7523 + DPoP) answers ``use_dpop_nonce`` (§8) and, retried with
    the nonce, signs in; at /api/official a proof without it is 401 with ``WWW-Authenticate: DPoP
    error="use_dpop_nonce"`` and ``DPoP-Nonce`` (§9), with it the answer."""
    r = token_request(client, app, key, tool)
    assert r.status_code == 400 and r.json["error"] == "use_dpop_nonce" and r.headers["DPoP-Nonce"]
    nonce = r.headers["DPoP-Nonce"]
    r = token_request(client, app, key, tool, proof=hubapi.dpop_proof(key, "POST", token_url(app), nonce=nonce))
    assert r.status_code == 200, r.json
    token = r.json["access_token"]
    url = app.config["ISSUER"] + "/api/official"
    r = official(client, token, hubapi.dpop_proof(key, "GET", url, token))
    assert r.status_code == 401 and r.json["error"] == "use_dpop_nonce"
    assert 'error="use_dpop_nonce"' in r.headers["WWW-Authenticate"]
    assert r.headers["WWW-Authenticate"].startswith("DPoP ") and r.headers["DPoP-Nonce"] == nonce
    r = official(client, token, hubapi.dpop_proof(key, "GET", url, token, nonce))
    assert r.status_code == 200 and r.json["acr"] == app.config["ACR_VALUES"].split()[2], r.json
    assert r.headers["DPoP-Nonce"] == nonce
    assert "proof_nonce_missing" not in dpop_refusals()


def test_userinfo_requires_the_nonce(app, client, browser, user, dpop_key):
    """UserInfo with ``Authorization: DPoP`` (RFC 9449 §7.1) is a resource: §9's 401 ``use_dpop_nonce``,
    then the claims with the nonce."""
    pub = make_rp(app, auth_method="none", first_party=True)
    code, verifier, _ = browser.code(pub, scope="openid profile")
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": pub["redirect_uri"],
            "code_verifier": verifier, "client_id": pub["client_id"]}
    r = client.post("/token", data=data, headers={"DPoP": proof(dpop_key, htu=token_url(app))})
    assert r.status_code == 400 and r.get_json()["error"] == "use_dpop_nonce"  # the code stays usable
    nonce = r.headers["DPoP-Nonce"]
    r = client.post("/token", data=data, headers={"DPoP": proof(dpop_key, htu=token_url(app), nonce=nonce)})
    assert r.status_code == 200 and r.get_json()["token_type"] == "DPoP", r.get_json()
    at = r.get_json()["access_token"]
    url = app.config["ISSUER"] + "/userinfo"
    headers = {"Authorization": f"DPoP {at}"}
    r = client.get("/userinfo", headers={**headers, "DPoP": proof(dpop_key, htm="GET", htu=url, access_token=at)})
    assert r.status_code == 401 and 'error="use_dpop_nonce"' in r.headers["WWW-Authenticate"]
    assert r.headers["DPoP-Nonce"] == nonce
    r = client.get("/userinfo", headers={**headers, "DPoP": proof(dpop_key, htm="GET", htu=url, access_token=at,
                                                                  nonce=nonce)})
    assert r.status_code == 200 and r.get_json()["sub"], r.get_json()


def test_every_node_sharing_the_keys_directory_agrees(app, instance, tmp_path_factory):
    """Stateless nonces: a second node (another app on the same keys directory) hands out and accepts
    the same nonce; a hub with other keys does not accept it (its key is derived from its own data key)."""
    nonce = dpop.current_nonce()
    other_node = create_app(_config(instance, **app_config_values()))
    with other_node.app_context():
        assert dpop.current_nonce() == nonce and dpop.nonce_ok(nonce)
    elsewhere = tmp_path_factory.mktemp("other-hub")
    shutil.copy(instance / "idp.sqlite3", elsewhere / "idp.sqlite3")
    (elsewhere / "keys").mkdir()
    datakey.create(elsewhere / "keys", None)
    shutil.copytree(instance / "keys", elsewhere / "keys", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(datakey.FILENAME))
    other_hub = create_app(_config(elsewhere, **app_config_values()))
    with other_hub.app_context():
        assert not dpop.nonce_ok(nonce) and dpop.current_nonce() != nonce


@pytest.mark.parametrize("app_config", [{"DPOP_NONCE": "off"}])
def test_with_nonces_off_nothing_changes(app, client, cc, dpop_key):
    """Default ``DPOP_NONCE=off``: a proof without a nonce is accepted and no ``DPoP-Nonce`` is sent
    (clients that never retry on ``use_dpop_nonce`` keep working)."""
    r = ask(client, cc, proof(dpop_key, htu=token_url(app)))
    assert r.status_code == 200 and r.get_json()["token_type"] == "DPoP"
    assert "DPoP-Nonce" not in r.headers


def test_officials_api_binding_is_the_rows(app, client, key, official_token):
    """RFC 9449 §6.1, §7.1 through ``tokens.sender_ok``: the officials' API reads the binding from the
    token's row (``cnf_jkt``), like UserInfo, not from the JWT's ``cnf``. With the row bound to another
    key, the proof by the key in the token's ``cnf.jkt`` is refused; with the row's binding gone, the
    token is refused as unbound."""
    token, nonce = official_token
    url = app.config["ISSUER"] + "/api/official"
    db.session.execute(update(Token).where(Token.access_digest == digest(token)).values(cnf_jkt="x" * 43))
    db.session.commit()
    r = official(client, token, hubapi.dpop_proof(key, "GET", url, token, nonce))
    assert r.status_code == 401 and r.json["error"] == "invalid_dpop_proof"
    assert dpop_refusals()[-1] == "proof_key_mismatch"
    db.session.execute(update(Token).where(Token.access_digest == digest(token)).values(cnf_jkt=None))
    db.session.commit()
    r = official(client, token, hubapi.dpop_proof(key, "GET", url, token, nonce))
    assert r.status_code == 401 and r.json["error"] == "invalid_token" and "not bound" in r.json["error_description"]


@pytest.mark.parametrize("setting", [{"DPOP_NONCE": "yes"}, {"DPOP_NONCE_LIFETIME": 5}])
def test_bad_settings_are_refused(tmp_path, setting):
    """``IDP_DPOP_NONCE`` is off or on; a window shorter than 10 s would expire nonces before a retry."""
    with pytest.raises(ConfigError):
        load({"DATABASE_URL": "sqlite://", **setting}, instance_path=str(tmp_path))
