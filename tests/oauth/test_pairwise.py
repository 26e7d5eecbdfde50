"""Pairwise subject identifiers (OIDC Core 1.0 §8, §8.1): one ``sub`` per sector, the same wherever a
client of that sector sees the person — ID token, UserInfo, access token (RFC 9068 §2.2),
introspection (RFC 7662 §2.2), back-channel logout token (Back-Channel Logout 1.0 §2.4) — and
mapped back when it returns in an ``id_token_hint`` (RP-Initiated Logout 1.0 §2).

https://openid.net/specs/openid-connect-core-1_0.html#PairwiseAlg
"""
from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest

from idp.errors import DomainError
from idp.keystore.jwt import sign_jwt
from idp.sessions.delivery import deliver_due
from tests.conftest import basic, make_rp
from tests.oauth.privacy_support import consent_page, decode, sign_in, tokens_for, userinfo
from tests.sessions.receiver import Receiver


def _client(app, redirect_uri, **kw):
    kw.setdefault("subject_type", "pairwise")
    kw.setdefault("name", "子站")
    return make_rp(app, first_party=True, redirect_uri=redirect_uri,
                   post_logout_redirect_uris=[redirect_uri.rsplit("/", 1)[0] + "/bye"], **kw)


def _sub(client, browser, rp) -> str:
    body = tokens_for(client, rp, consent_page(browser, rp, "openid"))
    return decode(client, body["id_token"])["sub"]


def test_pairwise_sub_is_the_same_in_every_token_and_response(app, client, browser, user):
    """§8.1: the client sees one subject in the ID token, UserInfo, its access token, introspection
    and the back-channel logout token — and never the public one."""
    with Receiver() as receiver:
        rp = _client(app, "https://rsj.example.cn/cb", backchannel_logout_uri=receiver.url)
        sign_in(browser, user)
        body = tokens_for(client, rp, consent_page(browser, rp, "openid profile"))
        sub = decode(client, body["id_token"])["sub"]
        assert sub != user.sub and len(sub) == 43
        assert decode(client, body["access_token"])["sub"] == sub
        assert userinfo(client, body["access_token"]).get_json()["sub"] == sub
        for token in (body["access_token"], body["refresh_token"]):
            intro = client.post("/introspect", data={"token": token}, headers=basic(rp)).get_json()
            assert intro["active"] is True and intro["sub"] == sub
        refreshed = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                                headers=basic(rp)).get_json()
        assert decode(client, refreshed["access_token"])["sub"] == sub
        client.get("/logout?" + urlencode({"id_token_hint": body["id_token"]}))
        assert deliver_due() == 1
    logout_token = decode(client, receiver.received[0])
    assert logout_token["sub"] == sub and logout_token["aud"] == rp["client_id"]


def test_pairwise_sub_is_stable_per_sector_and_differs_across_sectors(app, client, browser, user):
    """§8.1: clients of one sector (same redirect host, or the same registered sector identifier)
    see the same subject; clients of other sectors see others; public clients the public one."""
    a1 = _client(app, "https://rsj.example.cn/cb")
    a2 = _client(app, "https://rsj.example.cn/other/cb", name="人社局二")
    a3 = _client(app, "https://ssl.rsj-cdn.example.cn/cb", sector_identifier="rsj.example.cn")
    b = _client(app, "https://scjgj.example.cn/cb")
    public = _client(app, "https://zw.example.cn/cb", subject_type="public")
    sign_in(browser, user)
    subs = {name: _sub(client, browser, rp) for name, rp in (("a1", a1), ("a2", a2), ("a3", a3), ("b", b),
                                                              ("public", public))}
    assert subs["a1"] == subs["a2"] == subs["a3"]
    assert subs["b"] != subs["a1"] and subs["b"] != user.sub
    assert subs["public"] == user.sub
    sign_in(browser, user)  # a new session: the same subjects
    assert _sub(client, browser, a1) == subs["a1"] and _sub(client, browser, b) == subs["b"]


def test_id_token_hint_with_a_pairwise_sub_is_mapped_back(app, client, browser, user):
    """RP-Initiated Logout §2: a hint without ``sid`` is tied to the session by its subject, which
    for a pairwise client is the pairwise one; the public subject does not match it."""
    rp = _client(app, "https://rsj.example.cn/cb")
    sign_in(browser, user)
    sub = _sub(client, browser, rp)
    now = int(time.time())

    def hint(subject):
        return sign_jwt({"typ": "JWT"}, {"iss": "http://127.0.0.1:5000", "aud": rp["client_id"], "sub": subject,
                                         "iat": now, "exp": now + 60}, "RS256")

    params = {"post_logout_redirect_uri": "https://rsj.example.cn/bye", "state": "s"}
    wrong = client.get("/logout?" + urlencode({"id_token_hint": hint(user.sub), **params}))
    assert wrong.status_code == 200 and b'value="logout"' in wrong.data  # not tied: asks the person
    right = client.get("/logout?" + urlencode({"id_token_hint": hint(sub), **params}))
    assert right.status_code == 303 and right.location == "https://rsj.example.cn/bye?state=s"


@pytest.mark.parametrize("kw, words", [
    ({"redirect_uris": ["https://a.example.cn/cb", "https://b.example.cn/cb"]}, "several hosts"),
    ({"redirect_uris": ["https://a.example.cn/cb"], "sector_identifier": "not a host"}, "not a host name"),
    ({"redirect_uris": ["https://a.example.cn/cb"], "sector_identifier": "http://a.example.cn/s.json"}, "https"),
    ({"redirect_uris": ["https://a.example.cn/cb"], "subject_type": "public", "sector_identifier": "a.example.cn"},
     "only for pairwise"),
    ({"redirect_uris": ["https://a.example.cn/cb"], "subject_type": "secret"}, "subject type"),
])
def test_registration_refuses_an_ambiguous_sector(app, kw, words):
    """§8.1: without a sector identifier the sector is the redirect URIs' host, so they must share one."""
    from idp.oauth.clients import create_client

    kw.setdefault("subject_type", "pairwise")
    with pytest.raises(DomainError, match=words):
        create_client(name="x", **kw)


def test_cli_registers_pairwise_clients(runner):
    """``idp clients create --subject-type pairwise [--sector-identifier S]``; listed with its sector."""
    base = ["clients", "create", "--name", "人社局", "--subject-type", "pairwise"]
    r = runner.invoke(args=[*base, "--redirect-uri", "https://a.example.cn/cb", "--redirect-uri",
                            "https://b.example.cn/cb"])
    assert r.exit_code != 0 and "--sector-identifier" in r.output and "Traceback" not in r.output
    r = runner.invoke(args=[*base, "--redirect-uri", "https://a.example.cn/cb", "--redirect-uri",
                            "https://b.example.cn/cb", "--sector-identifier", "https://Example.CN/sector.json"])
    assert r.exit_code == 0, r.output
    client_id = json.loads(r.stdout)["client_id"]
    r = runner.invoke(args=[*base, "--redirect-uri", "https://c.example.cn/cb"])
    assert r.exit_code == 0, r.output
    listed = {c["client_id"]: c for c in json.loads(runner.invoke(args=["clients", "list"]).stdout)}
    assert listed[client_id]["subject_type"] == "pairwise" and listed[client_id]["sector_identifier"] == "example.cn"
    assert {c["sector_identifier"] for c in listed.values()} == {"example.cn", "c.example.cn"}


def test_discovery_lists_both_subject_types(client):
    """OIDC Discovery 1.0 §3 ``subject_types_supported``."""
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["subject_types_supported"] == ["public", "pairwise"]
