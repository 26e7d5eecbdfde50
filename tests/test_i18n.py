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


# -- every converted page: Chinese by default, English on request ----------------------------------

import re  # noqa: E402
from datetime import timedelta  # noqa: E402
from html import unescape  # noqa: E402

import pytest  # noqa: E402
from flask_babel import gettext, lazy_gettext  # noqa: E402

from tests.conftest import form_fields, make_rp  # noqa: E402


def page(resp) -> str:
    return unescape(resp.get_data(as_text=True))


def switch_hrefs(html: str) -> list[str]:
    nav = re.search(r'<nav class="lang"[^>]*>(.*?)</nav>', html, re.S).group(1)
    return [unescape(h) for h in re.findall(r'<a href="([^"]*)"', nav)]


def in_chinese(resp, *texts):
    body = page(resp)
    assert '<html lang="zh-CN">' in body, body[:300]
    for t in texts:
        assert t in body, f"{t!r} not on the page:\n{body}"
    return body


def in_english(resp, *texts):
    body = page(resp)
    assert '<html lang="en">' in body, body[:300]
    for t in texts:
        assert t in body, f"{t!r} not on the page:\n{body}"
    # No Chinese left but data (the person's and the subsite's names) and the switch back to Chinese.
    rest = re.sub(r'<nav class="lang".*?</nav>', "", body, flags=re.S)
    for data in ("张三", "测试子站"):
        rest = rest.replace(data, "")
    assert not re.search(r"[\u4e00-\u9fff]", rest), f"Chinese text left on the English page:\n{body}"
    return body


def test_home_page_signed_out(client):
    body = in_chinese(client.get("/"), "您尚未登录。", "统一身份认证平台", ">登录</a>")
    assert "You are not signed in" not in body
    in_english(client.get("/?lang=en"), "You are not signed in.", ">Sign in</a>")


def test_home_and_sessions_pages_signed_in(app, client, browser, user):
    """The sessions page shows times in the configured zone (IDP_TIMEZONE, Asia/Shanghai = UTC+8)."""
    from idp.sessions.models import SsoSession

    assert browser.login().status_code == 303
    in_chinese(client.get("/"), "已登录：张三", 'href="/account/sessions">我的登录会话</a>',
               'href="/logout">退出登录</a>')
    in_english(client.get("/?lang=en"), "Signed in as 张三.", ">Where you are signed in</a>", ">Sign out</a>")

    started = SsoSession.query.one().created_at
    local = (started + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")
    body = in_chinese(client.get("/account/sessions?lang=zh"),
                      "<h1>我的登录会话</h1>", "（本机）", ">全部退出</button>", ">结束</button>", local)
    assert 'data-label="登录时间"' in body and "UTC" not in body
    body = in_english(client.get("/account/sessions?lang=en"), "<h1>Where you are signed in</h1>",
                      "(this device)", ">Sign out everywhere</button>", ">End</button>", local)
    assert re.search(r'aria-label="End the session on [^"]+">End</button>', body), body


def test_logout_confirmation_and_signed_out_pages(app, client, browser, user):
    browser.login()
    confirm = in_chinese(client.get("/logout"), "<h1>退出登录？</h1>", "张三，是否退出统一身份认证平台",
                         '<button type="submit" name="decision" value="logout">退出登录</button>', ">取消</a>")
    in_english(client.get("/logout?lang=en"), "<h1>Sign out?</h1>", "张三, do you want to sign out",
               'value="logout">Sign out</button>', ">Cancel</a>")
    client.delete_cookie("idp_lang")
    done = client.post("/logout", data={**form_fields(confirm), "decision": "logout"})
    in_chinese(done, "<h1>您已退出登录</h1>", "并已通知您使用过的各部门网站", ">返回首页</a>")
    done = client.post("/logout?lang=en", data={**form_fields(confirm), "decision": "logout"})
    in_english(done, "<h1>You are signed out</h1>", ">Go to the home page</a>")


def test_ui_locales_of_a_logout_request(app, client, browser, user):
    """RP-Initiated Logout 1.0 §2: ``ui_locales`` of the logout request chooses the confirmation's
    language, and the signed-out page after it (the form does not repeat it)."""
    rp = make_rp(app, first_party=True)
    browser.login()
    resp = client.get("/logout?" + urlencode({"client_id": rp["client_id"], "ui_locales": "de en"}))
    confirm = in_english(resp, "<h1>Sign out?</h1>", "Requested by: 测试子站")
    done = client.post("/logout", data={**form_fields(confirm), "decision": "logout"})
    in_english(done, "<h1>You are signed out</h1>", ">Go to the home page</a>")


def test_ui_locales_on_an_authorization_error_page(app, client, rp):
    """OIDC Core §3.1.2.1 ``ui_locales``; RFC 6749 §4.1.2.1: a bad client_id or redirect_uri is
    shown to the person (never redirected), in the language the relying party asked for."""
    body = in_chinese(client.get("/authorize?client_id=nope"), "无法识别发起请求的网站", 'role="alert"')
    assert "<h1>无法完成您的请求</h1>" in body and "<code>invalid_client</code>" in body
    in_english(client.get("/authorize?" + urlencode({"client_id": "nope", "ui_locales": "en-GB"})),
               "Unknown client: the client_id is missing or not registered.")
    query = {"client_id": rp["client_id"], "redirect_uri": "https://evil.example/cb", "ui_locales": "en"}
    in_english(client.get("/authorize?" + urlencode(query)), "<h1>We could not complete this request</h1>",
               "The redirect_uri is missing or not registered for this client.")


def test_ui_locales_in_a_posted_authorization_request(app, client):
    """OIDC Core §3.1.2.1: the request may be POSTed; ui_locales then comes in the body."""
    resp = client.post("/authorize", data={"client_id": "nope", "ui_locales": "en"})
    in_english(resp, "Unknown client")


def test_protocol_json_stays_english(app, client):
    """RFC 6749 §5.2: error_description is for developers, ASCII, whatever the person's language."""
    client.set_cookie("idp_lang", "zh")
    resp = client.get("/authorize?client_id=nope", headers={"Accept": "application/json"})
    assert resp.get_json() == {"error": "invalid_client",
                               "error_description": "Unknown client: the client_id is missing or not registered."}
    resp = client.get("/token", headers={"Accept": "application/json"})
    assert resp.status_code == 405 and resp.get_json()["error_description"].isascii()


@pytest.mark.parametrize("make_request, status, zh, en", [
    (lambda c, q: c.get("/no-such-page" + q), 404, "此地址没有对应的页面", "There is no page at this address."),
    (lambda c, q: c.get("/account/sessions/end" + q), 405, "无法以这种方式打开此页面",
     "This page cannot be opened this way."),
    (lambda c, q: c.get("/" + q + "&x=" + "y" * 9000), 414, "网址过长。", "The address is too long."),
    (lambda c, q: c.post("/authorize" + q, data={"x": "y" * 70000}), 413, "请求内容过大。", "The request is too large."),
    (lambda c, q: c.post("/login" + q, headers={"Origin": "https://evil.example"},
                         data={"csrf_token": form_fields(c.get("/login").get_data(as_text=True))["csrf_token"]}),
     400, "该请求来自其他网站", "The request came from another site."),
    (lambda c, q: c.post("/account/sessions/end" + q, data={"sid": "all"}), 400, "页面已过期",
     "The page has expired. Go back, reload the page and try again."),
])
def test_errors_raised_before_any_view_are_in_the_persons_language(client, make_request, status, zh, en):
    """Refused before a view ran (routing, size limits, the Origin and CSRF checks): the page is still
    in the person's language, from ``?lang=`` or the cookie, and its switch never repeats the request."""
    resp = make_request(client, "?lang=zh")
    assert resp.status_code == status
    body = in_chinese(resp, zh, 'role="alert"')
    assert all("?" not in h.replace("?lang=en", "") for h in switch_hrefs(body)), switch_hrefs(body)
    client.set_cookie("idp_lang", "en")
    resp = make_request(client, "?_=1")
    assert resp.status_code == status
    in_english(resp, en)


def test_unexpected_error_page_in_both_languages(app, client):
    def boom():
        raise RuntimeError("bug")

    app.add_url_rule("/boom", "boom", boom)
    body = in_chinese(client.get("/boom"), "系统出现问题。如果再次发生，请提供参考编号 ")
    ref = re.search(r"参考编号 ([0-9a-f]{12})", body).group(1)
    assert re.search(r"quote reference [0-9a-f]{12}\.", in_english(client.get("/boom?lang=en")))
    assert "bug" not in body and ref
    assert client.get("/boom", headers={"Accept": "application/json"}).get_json()["error_description"].startswith(
        "Something went wrong on our side.")


# -- the switch -----------------------------------------------------------------------------------


def test_switch_is_labelled_marks_the_current_language_and_keeps_the_page(client):
    body = page(client.get("/?a=1&b=%E4%B8%AD"))
    nav = re.search(r'<nav class="lang" aria-label="语言">.*?</nav>', body, re.S).group(0)
    assert '<span aria-current="true" lang="zh-CN">简体中文</span>' in nav
    assert re.search(r'<a href="[^"]+" hreflang="en" lang="en">English</a>', nav), nav
    assert switch_hrefs(body) == ["/?a=1&b=%E4%B8%AD&lang=en"]
    body = page(client.get("/?a=1&lang=en"))
    assert '<nav class="lang" aria-label="Language">' in body
    assert switch_hrefs(body) == ["/?a=1&lang=zh"]


def test_switch_keeps_the_logout_confirmation_request(app, client, browser, user):
    """The confirmation in another language still returns to the subsite afterwards."""
    rp = make_rp(app, first_party=True, post_logout_redirect_uris=["https://rp.example.cn/bye"])
    browser.login()
    query = {"client_id": rp["client_id"], "post_logout_redirect_uri": "https://rp.example.cn/bye", "state": "s1"}
    [href] = switch_hrefs(page(client.get("/logout?" + urlencode(query))))
    assert href == "/logout?" + urlencode({**query, "lang": "en"})
    confirm = in_english(client.get(href), "Requested by")
    assert form_fields(confirm)["post_logout_redirect_uri"] == "https://rp.example.cn/bye"


def test_switch_never_echoes_a_refused_request(client):
    resp = client.get("/authorize?" + urlencode({"client_id": "<script>alert(1)</script>", "scope": "openid"}))
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400 and switch_hrefs(body) == ["/authorize?lang=en"]
    assert "<script>" not in body and "alert(1)" not in body


def test_each_request_chooses_its_language(app):
    """Flask-Babel caches the choice per app context; a second browser must not inherit the first's."""
    english, chinese = app.test_client(), app.test_client()
    assert '<html lang="en">' in english.get("/?lang=en").get_data(as_text=True)
    assert '<html lang="zh-CN">' in chinese.get("/").get_data(as_text=True)


def test_messages_outside_a_request_are_english(app):
    """The idp command's messages (DomainError shown by the CLI) are English, like its JSON."""
    from idp.errors import DomainError

    error = DomainError(lazy_gettext("The address is too long."))
    with app.test_request_context("/"):
        assert error.message == "网址过长。"
    assert error.message == "The address is too long." and gettext("Sign in") == "Sign in"
    # ... and a request after that (same app context) chooses its own language again.
    assert '<html lang="zh-CN">' in app.test_client().get("/").get_data(as_text=True)
