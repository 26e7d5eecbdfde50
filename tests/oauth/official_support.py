"""Helpers for the officials' certificate login tests: a registered tool, an official's PKCS#12 key,
assertions (RFC 7523 §3) and DPoP proofs (RFC 9449 §4.2) made with ``clients.sealctl``."""
from __future__ import annotations

import secrets
import time

import pytest

from clients.sealctl import hub as hubapi
from clients.sealctl.keys import Pkcs12Key
from tests.pki.conftest import P12_PASSWORD, issue_p12, make_official, quick_pkcs12  # noqa: F401

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@pytest.fixture
def tool(app):
    from idp.oauth.clients import create_client

    c, _ = create_client(name="sealctl", redirect_uris=[], auth_method="none", grant_types=[GRANT])
    return c.client_id


def official_key(runner, tmp_path, username="wangwu", name="wangwu.p12") -> Pkcs12Key:
    r, p12 = issue_p12(runner, tmp_path, username, name)
    assert r.exit_code == 0, r.output
    return Pkcs12Key(p12, P12_PASSWORD)


@pytest.fixture
def key(ca, runner, tmp_path):
    make_official()
    return official_key(runner, tmp_path)


def endpoint(app) -> str:
    return app.config["ISSUER"] + "/token"


def assertion(key, client_id, audience, **override) -> str:
    """A valid assertion, with claims replaced (None removes one) and header extras under ``_header``."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": hubapi.certificate_thumbprint(key), "aud": audience, "iat": now,
              "exp": now + 120, "jti": secrets.token_urlsafe(12)}
    header = {"typ": "JWT", "x5c": key.x5c(), **override.pop("_header", {})}
    header = {k: v for k, v in header.items() if v is not None}
    claims.update(override)
    return key.sign_jwt(header, {k: v for k, v in claims.items() if v is not None})


def token_request(client, app, key, client_id, *, proof_key=None, proof=None, **override):
    data = {"grant_type": GRANT, "assertion": assertion(key, client_id, endpoint(app), **override)}
    headers = {}
    if proof is None:
        proof = hubapi.dpop_proof(proof_key or key, "POST", endpoint(app))
    if proof:
        headers["DPoP"] = proof
    return client.post("/token", data=data, headers=headers)


def refusals(app, reason=None):
    from sqlalchemy import select

    from idp.audit.models import AuditEvent
    from idp.db import db

    with app.app_context():
        rows = db.session.execute(select(AuditEvent).where(AuditEvent.action == "official_login.refused")).scalars()
        return [r.detail["reason"] for r in rows]
