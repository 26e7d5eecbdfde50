"""``/account/activity``: the holder's own recent security events from the audit log, named in words,
newest first, with the address and the result; never another person's. (What a citizen needs to
spot a sign-in that was not theirs; the events themselves are the audit log's, OIDC-independent.)"""
from __future__ import annotations

import re

from idp.accounts.service import create_citizen
from tests.conftest import PASSWORD, Browser, exchange, make_rp
from tests.portal.support import post_form


def rows(client) -> list[list[str]]:
    """The activity table's rows as cell texts (English page)."""
    html = client.get("/account/activity?lang=en").get_data(as_text=True)
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_the_page_needs_a_session(client):
    resp = client.get("/account/activity")
    assert resp.status_code == 303 and resp.location == "/login?next=%2Faccount%2Factivity"


def test_sign_ins_changes_and_sites_are_listed_newest_first(app, client, browser, user):
    browser.login()
    site = make_rp(app, name="社保子站", first_party=False)
    code, verifier, _ = browser.code(site)
    assert exchange(client, site, code, verifier).status_code == 200
    post_form(client, "/account/password", current_password="not it", password="x" * 16, password_confirm="x" * 16)

    table = rows(client)
    assert [r[1] for r in table[:3]] == ["Password change refused: wrong current password", "Site allowed",
                                         "Signed in (password)"]
    refused, allowed, signed_in = table[:3]
    assert refused[4] == "Refused" and allowed[4] == "Done" and signed_in[4] == "Done"
    assert allowed[2] == "社保子站" and signed_in[3] == "127.0.0.1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", signed_in[0])
    assert "Account created" in [r[1] for r in table]


def test_another_persons_events_are_not_shown(app, client, browser, user):
    create_citizen(username="bob", password=PASSWORD)
    other = app.test_client()
    Browser(other).login(username="bob")
    browser.login()
    assert [r[1] for r in rows(client)] == ["Signed in (password)", "Account created"]
    assert [r[1] for r in rows(other)] == ["Signed in (password)", "Account created"]
    html = client.get("/account/activity?lang=zh").get_data(as_text=True)
    assert "最近动态" in html and "登录 (密码)" in html


def test_a_wrong_password_for_the_account_is_shown_to_its_holder(app, client, browser, user):
    """Someone else's attempt with the right name and a wrong password is on the holder's page (the
    audit event names the account by its subject, never by what was typed); an attempt on a name no
    account has is on nobody's page, and the form's answer is the same for both."""
    from idp.audit.models import AuditEvent

    stranger = app.test_client()
    wrong = Browser(stranger).login(username="alice", password="not the password")
    unknown = Browser(stranger).login(username="nobody-here", password="not the password")
    assert wrong.status_code == unknown.status_code == 200
    browser.login()
    table = rows(client)
    assert [r[1] for r in table] == ["Signed in (password)", "Sign-in refused: wrong password", "Account created"]
    assert table[1][4] == "Refused"
    failed = AuditEvent.query.filter_by(action="login.failed").order_by(AuditEvent.id).all()
    assert [e.target for e in failed] == [f"person:{user.sub}", None]
    assert all(e.actor == "anonymous" and "alice" not in str(e.detail) for e in failed)
