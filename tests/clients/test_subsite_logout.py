"""Logout in the demo subsite (``clients/subsite``), without a live hub: RP-Initiated Logout 1.0,
Back-Channel Logout 1.0 and Front-Channel Logout 1.0 from the relying party's side.

The subsite reads discovery and the JWKS for logout through one object
(``app.extensions["subsite_provider"]``, set with ``SUBSITE_PROVIDER``); here it is a fake provider
whose keys are EC P-256 keys made by joserfc, and the logout tokens are signed with them.
Sessions are put in place with Flask's ``session_transaction``, as the callback would leave them.
"""
from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from clients.subsite import create_app
from clients.subsite.logout import BACKCHANNEL_EVENT, LogoutStore, Provider, allowed_algorithms

ISSUER = "https://hub.example.cn"
CLIENT_ID = "subsite-client-1"
PORT = 5901
HOME = f"http://127.0.0.1:{PORT}/"
SIGNED_IN = "已登录 / Signed in as"
SIGNED_OUT = "已退出 / Signed out"
DROP = object()  # a claim left out of the token


def ec_key(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid, "use": "sig", "alg": "ES256"})


KEY = ec_key("hub-key-1")


def public(*keys) -> KeySet:
    return KeySet.import_key_set({"keys": [k.as_dict(private=False) for k in keys]})


class FakeProvider:
    """Discovery metadata and JWKS as the hub will publish them; counts JWKS refreshes."""

    def __init__(self, *keys, **metadata):
        self.meta = {
            "issuer": ISSUER,
            "jwks_uri": f"{ISSUER}/jwks.json",
            "end_session_endpoint": f"{ISSUER}/logout",
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "frontchannel_logout_supported": True,
            "frontchannel_logout_session_supported": True,
            **metadata,
        }
        self.keys = public(*(keys or (KEY,)))
        self.after_refresh: KeySet | None = None
        self.refreshes = 0

    def metadata(self) -> dict:
        return self.meta

    def key_set(self, refresh: bool = False) -> KeySet:
        if refresh:
            self.refreshes += 1
            if self.after_refresh is not None:
                self.keys = self.after_refresh
        return self.keys


@pytest.fixture
def provider():
    return FakeProvider()


@pytest.fixture
def app(provider):
    return create_app({
        "SUBSITE_NAME": "测试子站",
        "SUBSITE_PORT": PORT,
        "SUBSITE_ISSUER": ISSUER,
        "SUBSITE_CLIENT_ID": CLIENT_ID,
        "SUBSITE_CLIENT_SECRET": "not-used-here",
        "SUBSITE_SECRET_KEY": "k" * 40,
        "SUBSITE_PROVIDER": provider,
        "TESTING": True,
    })


def sign_in(app, sub: str = "user-1", sid: str | None = "sid-1", login_at: float | None = None):
    """A browser (test client) whose session is what /callback leaves after a sign-in."""
    browser = app.test_client()
    with browser.session_transaction() as s:
        s["user"] = {"sub": sub, "name": "张三"}
        s["id_token"] = f"id-token-of-{sub}-{sid}"
        s["auth"] = {"iss": ISSUER, "sub": sub, "sid": sid,
                     "login_at": time.time() - 30 if login_at is None else login_at}
    return browser


def home(browser) -> str:
    page = browser.get("/")
    assert page.status_code == 200
    return page.get_data(as_text=True)


def signed_in(browser) -> bool:
    text = home(browser)
    assert (SIGNED_IN in text) != ("统一身份认证登录" in text)
    return SIGNED_IN in text


def logout_token(key=KEY, header: dict | None = None, **claims) -> str:
    """A valid logout token (Back-Channel Logout 1.0 §2.4) unless the arguments say otherwise."""
    now = int(time.time())
    body = {"iss": ISSUER, "aud": CLIENT_ID, "iat": now, "exp": now + 120, "jti": secrets.token_urlsafe(12),
            "sid": "sid-1", "events": {BACKCHANNEL_EVENT: {}}}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not DROP}
    hdr = {"alg": "ES256", "kid": key.kid, "typ": "logout+jwt", **(header or {})}
    hdr = {k: v for k, v in hdr.items() if v is not DROP}
    return jwt.encode(hdr, body, key, algorithms=[hdr["alg"]], default_type=None)


def unsigned(**claims) -> str:
    """``alg: none`` (built by hand on purpose: joserfc rightly refuses to make one)."""
    now = int(time.time())
    body = {"iss": ISSUER, "aud": CLIENT_ID, "iat": now, "jti": secrets.token_urlsafe(12), "sid": "sid-1",
            "events": {BACKCHANNEL_EVENT: {}}, **claims}

    def b64(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'logout+jwt'})}.{b64(body)}."


def post_token(app, token: str):
    return app.test_client().post("/backchannel-logout", data={"logout_token": token})


def assert_accepted(response) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"


def assert_refused(response, fragment: str = "") -> None:
    """Back-Channel Logout 1.0 §2.8: 400, a JSON error, not cached."""
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["error"] == "invalid_request"
    assert fragment in body["error_description"], body


# -- back-channel: the happy paths -------------------------------------------------------------------


def test_valid_logout_token_ends_the_sessions_of_its_sid(app):
    """Back-Channel Logout 1.0 §2.6 (a valid token) and §2.7: every session of that ``sid`` ends, and
    the next page shows "signed out" with the sign-in link; other sessions stay (the same user's
    other provider session too: with a ``sid`` only that session ends); §2.8: 200, no-store."""
    browser, same_sid = sign_in(app, sid="sid-1"), sign_in(app, sub="user-2", sid="sid-1")
    other_session, other_user = sign_in(app, sid="sid-2"), sign_in(app, sub="user-2", sid="sid-3")
    assert signed_in(browser)

    assert_accepted(post_token(app, logout_token(sid="sid-1", sub="user-1")))

    text = home(browser)
    assert SIGNED_OUT in text and "统一身份认证登录" in text and SIGNED_IN not in text
    assert not signed_in(browser)  # the cookie was cleared, and stays so
    assert not signed_in(same_sid)
    assert signed_in(other_session) and signed_in(other_user)


def test_sub_only_token_ends_every_session_of_that_user(app):
    """§2.4/§2.7: a token with only ``sub`` ends all sessions of that user begun before it; a sign-in
    after the logout, and other users, are untouched."""
    first, second = sign_in(app, sid="sid-1"), sign_in(app, sid=None)
    stranger = sign_in(app, sub="user-2", sid="sid-9")

    assert_accepted(post_token(app, logout_token(sid=DROP, sub="user-1")))
    later = sign_in(app, sid="sid-new", login_at=time.time() + 1)

    assert SIGNED_OUT in home(first) and not signed_in(first)
    assert not signed_in(second)
    assert signed_in(stranger) and signed_in(later)


def test_audience_array_with_our_client_id_is_accepted(app):
    """§2.6 step 3 as for ID tokens (OIDC Core 1.0 §3.1.3.7 step 3): ``aud`` may be an array
    containing our client_id; a matching ``azp`` is fine, and ``typ`` may carry "application/"
    (RFC 7515 §4.1.9); ``iat`` a little ahead of our clock is within the leeway."""
    browser = sign_in(app)
    token = logout_token(aud=["other-rp", CLIENT_ID], azp=CLIENT_ID, iat=int(time.time()) + 30,
                         header={"typ": "application/logout+jwt"})
    assert_accepted(post_token(app, token))
    assert not signed_in(browser)


def test_unknown_kid_refetches_the_jwks_once(app, provider):
    """§2.6 step 2 with a rotated key: an unknown ``kid`` makes the subsite fetch the JWKS again
    (once); the token signed by the new key is then accepted."""
    new_key = ec_key("hub-key-2")
    provider.after_refresh = public(KEY, new_key)
    browser = sign_in(app)
    assert_accepted(post_token(app, logout_token(key=new_key)))
    assert provider.refreshes == 1
    assert not signed_in(browser)


def test_kid_unknown_after_the_refetch_is_refused(app, provider):
    """The refetch happens once per token: a ``kid`` the provider does not publish is refused."""
    browser = sign_in(app)
    assert_refused(post_token(app, logout_token(key=ec_key("nobody-has-this"))), "signature")
    assert provider.refreshes == 1
    assert signed_in(browser)


# -- back-channel: every way a token can be wrong ----------------------------------------------------

def _now() -> int:
    return int(time.time())


def _bad_tokens():
    # Times are taken when a case runs, not at collection: a long suite must not age "the future".
    other_key = ec_key(KEY.kid)  # same kid, another key: the signature does not verify
    rsa = RSAKey.generate_key(2048, parameters={"kid": KEY.kid})
    return {
        # §2.4 / RFC 8725 §3.11: explicitly typed
        "wrong typ (JWT)": (lambda: logout_token(header={"typ": "JWT"}), "typ"),
        "no typ": (lambda: logout_token(header={"typ": DROP}), "typ"),
        # §2.6 step 3
        "wrong iss": (lambda: logout_token(iss="https://evil.example"), "iss"),
        "wrong aud": (lambda: logout_token(aud="another-client"), "aud"),
        "aud array without us": (lambda: logout_token(aud=["a", "b"]), "aud"),
        "azp of another client": (lambda: logout_token(aud=[CLIENT_ID, "b"], azp="b"), "azp"),
        "no iat": (lambda: logout_token(iat=DROP), "iat"),
        "iat in the future": (lambda: logout_token(iat=_now() + 300, exp=_now() + 600), "issued in the future"),
        "iat too old": (lambda: logout_token(iat=_now() - 3600, exp=DROP), "too old"),
        "expired": (lambda: logout_token(iat=_now() - 300, exp=_now() - 120), "exp"),
        # §2.4: jti REQUIRED
        "no jti": (lambda: logout_token(jti=DROP), "jti"),
        # §2.6 step 4
        "neither sid nor sub": (lambda: logout_token(sid=DROP, sub=DROP), "neither sid nor sub"),
        "sid not a string": (lambda: logout_token(sid=42), "sid"),
        # §2.6 step 5
        "no events": (lambda: logout_token(events=DROP), "events"),
        "events without the logout event": (lambda: logout_token(events={"urn:other": {}}), "events"),
        "event value not an object": (lambda: logout_token(events={BACKCHANNEL_EVENT: "yes"}), "JSON object"),
        "events an array": (lambda: logout_token(events=[BACKCHANNEL_EVENT]), "events"),
        # §2.6 step 6
        "nonce present": (lambda: logout_token(nonce="n-0S6_WzA2Mj"), "nonce"),
        # §2.6 step 2
        "bad signature": (lambda: logout_token(key=other_key), "signature"),
        "alg none": (lambda: unsigned(), "signature"),
        "alg not used for ID tokens": (lambda: logout_token(key=rsa, header={"alg": "PS256"}), "signature"),
        "not a JWT": (lambda: "not.a.jwt", "signature"),
        "empty": (lambda: "", "missing"),
    }


BAD_TOKENS = _bad_tokens()


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_invalid_logout_token_is_refused_and_logs_nobody_out(app, case):
    """Back-Channel Logout 1.0 §2.6: each check refuses the token with §2.8's 400 + JSON error +
    no-store, and no session ends (§2.7 only after a valid token)."""
    make, fragment = BAD_TOKENS[case]
    browser, by_sub = sign_in(app, sid="sid-1"), sign_in(app, sid="sid-2")
    assert_refused(post_token(app, make()), fragment)
    assert signed_in(browser) and signed_in(by_sub)
    assert len(app.extensions["subsite_logout_store"]) == 0  # not even the jti was remembered


def test_replayed_jti_is_acknowledged_but_not_acted_on(app):
    """§2.6 step 7: a token whose ``jti`` was already received is not acted on again; it is answered
    200 so a provider resending an unacknowledged delivery (same jti) stops retrying."""
    token = logout_token(sid="sid-7", jti="jti-once")
    assert_accepted(post_token(app, token))
    browser = sign_in(app, sid="sid-1")
    replay = logout_token(sid="sid-1", jti="jti-once")  # same jti, another (validly signed) token
    assert post_token(app, replay).status_code == 200
    assert post_token(app, token).status_code == 200
    assert signed_in(browser)  # the replay ended nothing


def test_issuer_of_discovery_must_be_ours(app, provider):
    """OIDC Discovery 1.0 §4.3: metadata naming another issuer is not used to validate anything."""
    provider.meta["issuer"] = "https://elsewhere.example"
    browser = sign_in(app)
    assert_refused(post_token(app, logout_token()), "issuer")
    assert signed_in(browser)


def test_request_shape(app):
    """§2.5: one ``logout_token`` in a form-encoded POST; anything else is a 400 (§2.8); GET is 405."""
    browser = sign_in(app)
    client = app.test_client()
    assert_refused(client.post("/backchannel-logout", data={"id_token": logout_token()}), "logout_token")
    assert_refused(client.post("/backchannel-logout"), "form-encoded")
    token = logout_token()
    assert_refused(client.post("/backchannel-logout", data={"logout_token": [token, token]}), "logout_token")
    assert_refused(client.post("/backchannel-logout", json={"logout_token": token}), "form-encoded")
    assert_refused(client.post("/backchannel-logout", data={"logout_token": "x" * 70_000}), "too large")
    assert client.get("/backchannel-logout").status_code == 405
    assert signed_in(browser)


def test_allowed_algorithms_never_include_none_or_symmetric():
    """§2.4: signed like ID tokens; §2.6 step 2 needs a signature we can check with the JWKS."""
    meta = {"id_token_signing_alg_values_supported": ["none", "HS256", "RS256", "ES256", "EdDSA", "XX1"]}
    assert allowed_algorithms(meta) == ["RS256", "ES256"]
    assert allowed_algorithms({}) == ["RS256"]  # OIDC Discovery 1.0 §3: RS256 is the default
    assert allowed_algorithms({"id_token_signing_alg_values_supported": "RS256"}) == []


# -- RP-Initiated Logout -----------------------------------------------------------------------------


def test_logout_redirects_to_the_end_session_endpoint(app, provider):
    """RP-Initiated Logout 1.0 §2: the local session ends and the browser goes to the
    ``end_session_endpoint`` from discovery (§2.1) with ``id_token_hint``, ``client_id``,
    ``post_logout_redirect_uri`` and ``state``; §3: back with that state, "signed out" is shown."""
    provider.meta["end_session_endpoint"] = f"{ISSUER}/logout?ui=1"  # its own query is kept
    browser = sign_in(app, sid="sid-1")
    response = browser.get("/logout")
    assert response.status_code == 302
    url = urlsplit(response.headers["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{ISSUER}/logout"
    params = parse_qs(url.query)
    assert {k: len(v) for k, v in params.items()} == {"ui": 1, "id_token_hint": 1, "client_id": 1,
                                                      "post_logout_redirect_uri": 1, "state": 1}
    assert params["id_token_hint"] == ["id-token-of-user-1-sid-1"]
    assert params["client_id"] == [CLIENT_ID]
    assert params["post_logout_redirect_uri"] == [HOME]
    state = params["state"][0]
    assert len(state) >= 32
    with browser.session_transaction() as s:
        assert dict(s) == {"logout_state": state}  # nothing of the sign-in is left

    text = browser.get("/", query_string={"state": state}).get_data(as_text=True)
    assert SIGNED_OUT in text and "统一身份认证登录" in text
    again = browser.get("/", query_string={"state": state}).get_data(as_text=True)
    assert SIGNED_OUT not in again  # the state is used once


def test_logout_return_with_a_wrong_or_missing_state(app):
    """RP-Initiated Logout 1.0 §3: a state that is not ours (or none) just shows the home page."""
    for query in ({"state": "forged"}, {}):
        browser = sign_in(app)
        browser.get("/logout")
        text = browser.get("/", query_string=query).get_data(as_text=True)
        assert SIGNED_OUT not in text and "统一身份认证登录" in text
        with browser.session_transaction() as s:
            assert "logout_state" not in s


def test_logout_without_id_token_goes_home(app):
    """Without an ID token there is nothing to hint with (§2): just the local sign-out."""
    browser = app.test_client()
    response = browser.get("/logout")
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/"
    with browser.session_transaction() as s:
        assert "logout_state" not in s


def test_logout_when_the_provider_is_unreachable_still_signs_out(app, provider):
    def broken():
        raise OSError("connection refused")

    provider.metadata = broken
    browser = sign_in(app)
    response = browser.get("/logout")
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/"
    assert not signed_in(browser)


# -- Front-Channel Logout ----------------------------------------------------------------------------


def frontchannel(browser, **params):
    response = browser.get("/frontchannel-logout", query_string=params)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache, no-store"  # Front-Channel Logout 1.0 §2
    assert response.headers["Pragma"] == "no-cache"
    return response


def test_frontchannel_logout_with_matching_iss_and_sid(app):
    """Front-Channel Logout 1.0 §2/§3: ``iss`` and ``sid`` of this session end it; the sid is then
    known as ended, so another cookie of the same provider session is over too."""
    browser, twin = sign_in(app, sid="sid-1"), sign_in(app, sid="sid-1")
    frontchannel(browser, iss=ISSUER, sid="sid-1")
    assert not signed_in(browser)
    assert SIGNED_OUT in home(twin)


@pytest.mark.parametrize("params", [
    {"iss": ISSUER, "sid": "sid-2"},
    {"iss": "https://evil.example", "sid": "sid-1"},
    {"sid": "sid-1"},  # §2: if either is included, both must be
    {"iss": ISSUER},
])
def test_frontchannel_logout_not_for_this_session_is_ignored(app, params):
    """§2: parameters that do not name this session change nothing (and fail quietly: 200)."""
    browser = sign_in(app, sid="sid-1")
    frontchannel(browser, **params)
    assert signed_in(browser)
    assert len(app.extensions["subsite_logout_store"]) == 0


def test_frontchannel_logout_without_parameters_ends_this_session(app):
    """§2: without iss/sid the RP "clears state associated with the logged-in session"."""
    browser = sign_in(app)
    frontchannel(browser)
    assert not signed_in(browser)
    frontchannel(app.test_client())  # no session at all: still a quiet 200


# -- the session bookkeeping -------------------------------------------------------------------------


def test_session_older_than_its_lifetime_is_ended(app):
    browser = sign_in(app, login_at=time.time() - 13 * 3600)
    text = home(browser)
    assert SIGNED_IN not in text and "登录已过期" in text


def test_store_forgets_after_the_lifetime_and_stays_bounded():
    clock = [1000.0]
    store = LogoutStore(lifetime=100, max_entries=3, clock=lambda: clock[0])
    store.end_sid("a")
    store.end_sub("u", at=1000.0)
    assert store.is_ended("a", None, 999) and store.is_ended(None, "u", 999)
    assert not store.is_ended(None, "u", 1001)  # signed in after the logout
    clock[0] = 1101.0
    assert not store.is_ended("a", None, 999) and not store.is_ended(None, "u", 999)
    for sid in "bcdef":
        store.end_sid(sid)
    assert len(store) == 3  # the expired sub is gone, the sids are capped at 3
    assert store.is_ended("f", None, 0) and not store.is_ended("b", None, 0)


def test_jti_cache_is_thread_safe():
    store = LogoutStore()
    results, barrier = [], threading.Barrier(16)

    def use():
        barrier.wait()
        results.append(store.first_use_of_jti("same", time.time() + 60))

    threads = [threading.Thread(target=use) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 15 + [True]


def test_provider_refetches_the_jwks_at_most_once_per_interval():
    """The default ``Provider`` (Authlib's client underneath): refresh on demand, rate-limited."""
    clock = [0.0]

    class FakeAuthlibApp:
        fetched = 0

        def load_server_metadata(self):
            return {"issuer": ISSUER}

        def fetch_jwk_set(self, force=False):
            FakeAuthlibApp.fetched += 1
            return {"keys": [KEY.as_dict(private=False)]}

    p = Provider(FakeAuthlibApp(), min_refresh=10, clock=lambda: clock[0])
    p.key_set()
    p.key_set()
    assert FakeAuthlibApp.fetched == 1
    p.key_set(refresh=True)  # the first copy may be Authlib's cache, of unknown age: refetched
    assert FakeAuthlibApp.fetched == 2
    clock[0] = 5
    p.key_set(refresh=True)  # fetched 5 s ago: not again
    assert FakeAuthlibApp.fetched == 2
    clock[0] = 11
    p.key_set(refresh=True)
    assert FakeAuthlibApp.fetched == 3
    assert p.metadata()["issuer"] == ISSUER
