"""The ``claims`` request parameter (OIDC Core §5.5): validated at /authorize (malformed →
``invalid_request``), carried as parsed to the code and the tokens, and advertised in discovery."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.oauth2.rfc6749.errors import InvalidRequestError

from idp.oauth import claims_request
from idp.oauth.models import AuthorizationCode, Token
from tests.conftest import exchange


def _q(resp):
    return parse_qs(urlsplit(resp.location).query)


@pytest.mark.parametrize("raw", [
    "not json", "[]", '"id_token"', "null", "1", "{", '{"id_token": []}', '{"userinfo": "email"}',
    '{"id_token": {"acr": true}}', '{"id_token": {"acr": {"essential": "yes"}}}',
    '{"id_token": {"acr": {"values": "urn:idp:loa:2"}}}', '{"id_token": {"acr": {"value": NaN}}}',
    "[" * 1100 + "]" * 1100,  # deeper than the JSON parser's recursion limit
])
def test_malformed_claims_is_invalid_request(client, browser, rp2, user, raw):
    """§5.5: a JSON object whose ``userinfo``/``id_token`` members are objects of null or claim requests
    (``essential`` boolean, ``values`` array); anything else is refused at the client with state and iss."""
    browser.login()
    resp = browser.authorize(rp2, extra={"claims": raw})
    assert resp.status_code == 302 and resp.location.startswith(rp2["redirect_uri"])
    q = _q(resp)
    assert q["error"] == ["invalid_request"] and q["state"] == [resp.params["state"]] and "code" not in q


def test_parsing_keeps_only_what_section_5_5_defines():
    """§5.5: "Any members used that are not understood MUST be ignored"; an empty value is no request
    (RFC 6749 §3.1)."""
    raw = json.dumps({"userinfo": {"email": {"essential": True}, "name": None, "x": {"essential": False, "foo": 1}},
                      "id_token": {"acr": {"values": ["urn:idp:loa:2"]}}, "x-unknown": {"a": 1}})
    assert claims_request.parse(raw) == {
        "userinfo": {"email": {"essential": True}, "name": None, "x": {"essential": False}},
        "id_token": {"acr": {"values": ["urn:idp:loa:2"]}},
    }
    assert claims_request.parse("") is None and claims_request.parse(None) is None
    for deep in ("[" * 2000 + "]" * 2000, '{"a":' * 1500 + "1" + "}" * 1500):
        with pytest.raises(InvalidRequestError):
            claims_request.parse(deep)
    assert claims_request.requested_values(claims_request.parse(raw), "id_token", "acr") == (False, ["urn:idp:loa:2"])


def test_claims_request_is_carried_to_the_code_and_the_tokens(app, client, browser, rp2, user):
    """The parsed request travels with the grant (``AuthorizationCode.claims_request`` and
    ``Token.claims_request``) for the claim release to honour at the token and UserInfo endpoints."""
    raw = json.dumps({"userinfo": {"email": {"essential": True}}, "id_token": {"acr": {"values": ["urn:idp:loa:1"]}}})
    code, verifier, _ = browser.code(rp2, extra={"claims": raw})
    assert AuthorizationCode.query.one().claims_request == json.loads(raw)
    assert exchange(client, rp2, code, verifier).status_code == 200
    assert Token.query.one().claims_request == json.loads(raw)


def test_discovery_advertises_the_claims_parameter(client):
    """OIDC Discovery 1.0 §3: claims_parameter_supported."""
    assert client.get("/.well-known/openid-configuration").get_json()["claims_parameter_supported"] is True
