"""Helpers of the portal tests: reading codes from the development outbox, filling the forms."""
from __future__ import annotations

import re

from idp import messaging
from idp.messaging.outbox import read_outbox
from tests.authn.support import let_delays_pass  # noqa: F401  (the portal tests wait out delays too)
from tests.conftest import form_fields


def messages_to(app, to: str) -> list[dict]:
    assert messaging.wait_idle(10), "a message was still being sent after 10 s"
    return read_outbox(app.config["OUTBOX_DIR"], to=to)


def code_sent_to(app, to: str) -> str:
    """The code in the latest message to ``to``."""
    found = messages_to(app, to)
    assert found, f"no message to {to} in the outbox"
    m = re.search(r"\b(\d{6})\b", found[-1]["body"])
    assert m, found[-1]["body"]
    return m.group(1)


def post_form(client, page_url: str, action: str | None = None, **values):
    """GET a page, then POST its form with the CSRF token it carries and ``values``."""
    page = client.get(page_url)
    fields = form_fields(page.get_data(as_text=True))
    return client.post(action or page_url, data={**fields, **values})


def request_registration_code(client, destination: str):
    return post_form(client, "/register", destination=destination)


def finish_registration(client, code: str, *, username="wangwu", password="plum blossom river 9",
                        name="王五", id_number="21050219850118123X"):
    return post_form(client, "/register/verify", code=code, username=username, password=password,
                     password_confirm=password, name=name, id_number=id_number)


def request_reset(client, login: str):
    return post_form(client, "/reset", login=login)


def finish_reset(client, code: str, password: str = "new plum blossom 42"):
    return post_form(client, "/reset/verify", code=code, password=password, password_confirm=password)


def page_skeleton(html: str, *variable: str) -> str:
    """A page without what differs by design between two requests (CSRF tokens, given values)."""
    html = re.sub(r'(name="csrf_token"[^>]*value=")[^"]*"', r'\1"', html)
    for value in variable:
        html = html.replace(value, "…")
    return html
