"""Languages: Simplified Chinese by default, English on request (switch, cookie, OIDC ``ui_locales``)."""
from __future__ import annotations

from urllib.parse import urlencode

from idp.i18n import compiled_catalogs, match_ui_locales


def test_pages_are_chinese_by_default(client):
    body = client.get("/login").get_data(as_text=True)
    assert '<html lang="zh-CN">' in body and "本溪市统一身份认证平台" in body
    assert 'hreflang="en"' in body  # the switch is on the page


def test_switch_to_english_is_remembered(client):
    resp = client.get("/login?lang=en")
    assert '<html lang="en">' in resp.get_data(as_text=True)
    assert "idp_lang=en" in resp.headers["Set-Cookie"]
    assert "Benxi City Identity" in client.get("/login").get_data(as_text=True)


def test_ui_locales_from_the_authorization_request(client, rp):
    """OIDC Core §3.1.2.1: ``ui_locales`` is a space-separated list of BCP 47 tags, in preference order."""
    query = {"client_id": rp["client_id"], "redirect_uri": rp["redirect_uri"], "response_type": "code",
             "scope": "openid", "ui_locales": "fr-CA en-US zh-CN", "code_challenge": "x" * 43,
             "code_challenge_method": "S256"}
    login = client.get("/authorize?" + urlencode(query))
    assert login.status_code == 303
    assert '<html lang="en">' in client.get(login.headers["Location"]).get_data(as_text=True)


def test_ui_locales_matching():
    assert match_ui_locales("fr de-CH") is None
    assert match_ui_locales("zh-Hans-CN en") == "zh"
    assert match_ui_locales("EN_gb") == "en"


def test_catalogues_are_merged_per_language(tmp_path):
    po = tmp_path / "zh" / "LC_MESSAGES"
    po.mkdir(parents=True)
    (po / "a.po").write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\nmsgid "One"\nmsgstr "一"\n')
    (po / "b.po").write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\nmsgid "Two"\nmsgstr "二"\n')
    import gettext

    t = gettext.translation("messages", compiled_catalogs(tmp_path), languages=["zh"])
    assert (t.gettext("One"), t.gettext("Two"), t.gettext("Three")) == ("一", "二", "Three")
