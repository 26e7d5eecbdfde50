"""One citizen's whole journey, end to end through the pages and the operator's commands:
registration with a verified phone → real-name check at a service counter → TOTP enrolled on the
security page → a subsite asks for assurance level 2 (``acr_values``, OIDC Core §3.1.2.1) and the
``org`` scope → step-up with a TOTP code → the person chooses the business they act for → consent →
the subsite's ID token (checked against the JWKS, as a relying party does) and UserInfo carry
``acr``, ``amr`` (RFC 8176) and ``org``; then the person switches back to acting for themself.
"""
from __future__ import annotations

import json
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pyotp
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.authn.support import clock  # noqa: F401  (the TOTP verifier's clock, moved by the test)
from tests.conftest import Browser, exchange, form_fields, make_rp
from tests.portal.support import code_sent_to, finish_registration, request_registration_code

LOA1, LOA2 = "urn:idp:loa:1", "urn:idp:loa:2"
PHONE, ID_NUMBER, PASSWORD = "13904140001", "21050219850118123X", "plum blossom river 9"
USCC = "9144030071526726XG"


def _form(html: str, marker: str) -> tuple[str, dict]:
    """The action and fields of the form containing ``marker``."""
    for m in re.finditer(r'<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>', html, re.S):
        if marker in m.group(2):
            return unescape(m.group(1)), form_fields(m.group(2))
    raise AssertionError(f"no form with {marker!r} in:\n{html[:3000]}")


def _cli(runner, *args) -> dict:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def test_register_verify_enroll_step_up_act_for_a_business_and_the_subsite_sees_it(app, client, runner, clock):
    # 1. Self-registration with a phone verified by a one-time code: signed in at level 1.
    request_registration_code(client, PHONE)
    done = finish_registration(client, code_sent_to(app, PHONE), username="liming", password=PASSWORD,
                               name="李明", id_number=ID_NUMBER)
    assert done.status_code == 303 and done.location == "/account", done.get_data(as_text=True)[:800]
    account = client.get("/account?lang=en").get_data(as_text=True)
    assert "2105**********123X" in account and ID_NUMBER not in account and "139****0001" in account

    # 2. The operator records an in-person check at a service counter, and registers the business
    #    the citizen legally represents.
    verified = _cli(runner, "users", "verify", "--username", "liming", "--method", "counter")
    assert verified["assurance_level"] == 1  # level 2 needs TOTP as well
    business = _cli(runner, "businesses", "create", "--uscc", USCC, "--name", "本溪太子河科技有限公司",
                    "--representative", "liming")

    # 3. TOTP enrolled from the security page (manual key, confirmed with a first code).
    page = client.get("/account/security?lang=en").get_data(as_text=True)
    action, fields = _form(page, 'name="password"')
    assert client.post(action, data={**fields, "password": PASSWORD}).status_code == 303
    page = client.get("/account/security").get_data(as_text=True)
    key = re.sub(r"\s", "", unescape(re.search(r'<code id="totp-key"[^>]*>([^<]+)</code>', page).group(1)))
    action, fields = _form(page, 'name="otp"')
    confirmed = client.post(action, data={**fields, "otp": pyotp.TOTP(key).generate_otp(clock.step)})
    assert confirmed.status_code == 200 and len(re.findall(r"<li><code>", confirmed.get_data(as_text=True))) == 10
    clock.tick()

    # 4. A subsite asks for level 2 and the business: the session (level 1) is stepped up with a code.
    subsite = make_rp(app, name="本溪市市场监督管理局", scopes=["openid", "profile", "phone", "org"])
    resp = Browser(client).authorize(subsite, scope="openid profile phone org", extra={"acr_values": LOA2},
                                     consent=None)
    verifier = resp.verifier
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'action="/login/step-up"' in html
    step_up = client.post("/login/step-up", data={**form_fields(html), "otp": pyotp.TOTP(key).generate_otp(clock.step)})
    assert step_up.status_code == 303
    resp = client.get(step_up.location)

    # 5. Whom do you act for? The business. Then consent, claim by claim.
    html = resp.get_data(as_text=True)
    assert 'name="act_as"' in html and "本溪太子河科技有限公司" in html
    action, fields = _form(html, 'name="act_as"')
    resp = client.post(action, data={**fields, "act_as": business["id"]})
    html = resp.get_data(as_text=True)
    assert 'name="decision"' in html and "139****0001" in html and "13904140001" not in html
    action, fields = _form(html, 'name="decision"')
    resp = client.post(action, data={**fields, "decision": "allow"})
    assert resp.status_code == 302 and resp.location.startswith(subsite["redirect_uri"])

    # 6. What the subsite learns, verified like a relying party does.
    code = parse_qs(urlsplit(resp.location).query)["code"][0]
    tokens = exchange(client, subsite, code, verifier).get_json()
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    id_token = jwt.decode(tokens["id_token"], keys).claims
    assert id_token["acr"] == LOA2 and {"pwd", "otp"} <= set(id_token["amr"])
    org = {"id": business["id"], "name": "本溪太子河科技有限公司", "uscc": USCC, "role": "legal_representative"}
    assert id_token["org"] == org
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).get_json()
    assert info["sub"] == id_token["sub"] and info["org"] == org
    assert info["name"] == "李明" and info["phone_number"] == "+86" + PHONE and info["phone_number_verified"] is True
    assert "id_card_number" not in info  # never without the id_card scope

    # 7. Switching back to acting for oneself, without signing out: the next authorization has no org.
    page = client.get("/account/businesses").get_data(as_text=True)
    action, fields = _form(page, 'name="act_as"')
    assert client.post(action, data={**fields, "act_as": "self"}).status_code in (302, 303)
    resp = Browser(client).authorize(subsite, scope="openid profile phone org", consent="allow")
    code = parse_qs(urlsplit(resp.location).query)["code"][0]
    again = jwt.decode(exchange(client, subsite, code, resp.verifier).get_json()["id_token"], keys).claims
    assert "org" not in again and again["sid"] == id_token["sid"]
