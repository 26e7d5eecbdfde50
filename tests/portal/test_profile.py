"""The account home (/account) and password change (/account/password): signed-in people only,
identifiers shown masked (PIPL; issue 4 "shown masked"), a change ends the person's other sessions."""
from __future__ import annotations

from idp.audit.models import AuditEvent
from idp.sessions.models import SsoSession
from tests.conftest import PASSWORD, Browser
from tests.portal.support import let_delays_pass, messages_to, post_form

NEW = "autumn maple valley 7"


def test_account_pages_need_a_session(client):
    for path in ("/account", "/account/password"):
        resp = client.get(path)
        assert resp.status_code == 303 and resp.location == f"/login?next=%2Faccount{path[8:].replace('/', '%2F')}"


def test_account_home_shows_masked_identifiers_and_links(app, client, browser, user):
    browser.login()
    client.set_cookie("idp_lang", "en")
    html = client.get("/account").get_data(as_text=True)
    assert "张三" in html and "alice" in html
    assert "1101**********002X" in html and "138****8000" in html and "a***@example.cn" in html
    for clear in ("11010519491231002X", "13800138000", "alice@example.cn"):
        assert clear not in html
    assert "Assurance level 1" in html and "Self-registered" in html
    for link in ("/account/security", "/account/businesses", "/account/consents", "/account/sessions",
                 "/account/password"):
        assert f'href="{link}"' in html
    assert "我的账户" in client.get("/account?lang=zh").get_data(as_text=True)


def test_password_change_keeps_this_session_and_ends_the_others(app, client, browser, user):
    other = app.test_client()
    Browser(other).login()
    browser.login()
    mine = SsoSession.query.order_by(SsoSession.id.desc()).first()
    resp = post_form(client, "/account/password", current_password=PASSWORD, password=NEW, password_confirm=NEW)
    assert resp.status_code == 303 and resp.location == "/account?changed=password"
    live = SsoSession.query.filter_by(ended_at=None).all()
    assert [s.id for s in live] == [mine.id]
    assert SsoSession.query.filter_by(end_reason="password_changed").count() == 1
    assert client.get("/account").status_code == 200 and other.get("/account").status_code == 303
    assert AuditEvent.query.filter_by(action="password.changed").one().detail == {"other_sessions_ended": 1}
    assert "password of your account was just changed" in messages_to(app, "13800138000")[0]["body"] \
        or "密码刚刚被修改" in messages_to(app, "13800138000")[0]["body"]
    assert Browser(app.test_client()).login(password=NEW).status_code == 303


def test_password_change_refusals(app, client, browser, user):
    browser.login()
    client.set_cookie("idp_lang", "en")
    wrong = post_form(client, "/account/password", current_password="not my password", password=NEW,
                      password_confirm=NEW)
    assert wrong.status_code == 400 and "The current password is wrong" in wrong.get_data(as_text=True)
    assert AuditEvent.query.filter_by(action="password.change_failed").count() == 1
    same = post_form(client, "/account/password", current_password=PASSWORD, password=PASSWORD,
                     password_confirm=PASSWORD)
    assert "must differ from the current one" in same.get_data(as_text=True)
    weak = post_form(client, "/account/password", current_password=PASSWORD, password="1234567890",
                     password_confirm="1234567890")
    assert "most common passwords" in weak.get_data(as_text=True)
    no_csrf = client.post("/account/password", data={"current_password": PASSWORD, "password": NEW,
                                                      "password_confirm": NEW})
    assert no_csrf.status_code == 400 and "The page has expired" in no_csrf.get_data(as_text=True)  # the CSRF refusal


def test_guessing_the_current_password_is_throttled_like_a_login(app, client, browser, user):
    browser.login()
    client.set_cookie("idp_lang", "en")
    for _ in range(5):
        let_delays_pass()
        post_form(client, "/account/password", current_password="guess guess guess", password=NEW,
                  password_confirm=NEW)
    let_delays_pass()
    locked = post_form(client, "/account/password", current_password=PASSWORD, password=NEW, password_confirm=NEW)
    assert locked.status_code == 429 and "Too many failed attempts" in locked.get_data(as_text=True)
