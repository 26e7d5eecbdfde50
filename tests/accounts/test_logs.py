"""Nothing personal in logs: a login by phone number and an authorization whose ``login_hint`` is
the phone number, through a real HTTP server, leave no phone number, ID number, email, name,
password, code, token or cookie in any log line — the Werkzeug development server's request log
and every Python logger at DEBUG in one test, the access log of ``idp serve`` (Granian) in the other.
Access logs keep the path and drop the query string (the hub's query strings carry ``login_hint``,
``code``, ``state``, ``id_token_hint``)."""
from __future__ import annotations

import logging
import threading
import time
from urllib.parse import quote, urlencode

import pytest
import requests
from werkzeug.serving import make_server

from tests.conftest import PASSWORD, make_rp, pkce_pair
from tests.e2e.browser import HubBrowser, parse_forms, query
from tests.e2e.hub import LiveHub

ID_NUMBER, PHONE, EMAIL, NAME = "11010519491231002X", "13800138000", "alice@example.cn", "张三"


def _flow(base: str, rp: dict) -> list[str]:
    """Sign in by phone number from an authorization request hinting it, consent, redeem the code,
    call UserInfo; then a wrong password typed with the ID number, and a stray URL carrying
    personal data. Returns the secrets the hub handed out (they must not be logged either)."""
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": rp["client_id"], "redirect_uri": rp["redirect_uri"],
              "scope": "openid profile email phone", "state": "st-logs", "nonce": "n-logs",
              "code_challenge": challenge, "code_challenge_method": "S256", "login_hint": PHONE}
    with HubBrowser(PHONE, PASSWORD) as browser:
        location = browser.authorize(base + "/authorize?" + urlencode(params), rp["redirect_uri"])
        assert browser.pages == ["login", "consent"], browser.trail
        code = query(location)["code"][0]
        cookies = [c.value for c in browser.http.cookies]
        tokens = requests.post(base + "/token", auth=(rp["client_id"], rp["client_secret"]), timeout=15, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": rp["redirect_uri"],
            "code_verifier": verifier}).json()
        info = requests.get(base + "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]},
                            timeout=15).json()
        assert info["phone_number"] == "+86" + PHONE and info["email"] == EMAIL  # the data did flow
        login = next(f for f in parse_forms(browser.http.get(base + "/login", timeout=15).text)
                     if "username" in f.fields)
        browser.http.post(base + "/login", data={**login.fields, "username": ID_NUMBER, "password": "wrong!"},
                          timeout=15)
        browser.http.get(base + "/nowhere?" + urlencode({"id": ID_NUMBER, "email": EMAIL}), timeout=15)
    return [code, tokens["access_token"], tokens["refresh_token"], tokens["id_token"], *cookies]


def _assert_clean(text: str, secrets: list[str]) -> None:
    personal = [ID_NUMBER, ID_NUMBER.lower(), PHONE, EMAIL, quote(EMAIL), NAME, quote(NAME), PASSWORD,
                quote(PASSWORD), "wrong!"]
    for value in personal + secrets:
        assert value not in text, f"{value[:12]}… appears in the logs"


def test_no_personal_data_in_any_log_of_the_development_server(app, user, caplog):
    """Every logger at DEBUG (Werkzeug request lines, SQLAlchemy statements, Authlib, the hub's own)
    through the flow: the request lines are there, their query strings are not."""
    rp = make_rp(app, name="子站", redirect_uri="https://rp.example.cn/cb")
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # as an operator debugging SQL would
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        secrets = _flow(f"http://127.0.0.1:{server.server_port}", rp)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    # The server's threads are the hub; this thread is the test's own HTTP client (urllib3 logs its URLs).
    hub = [r for r in caplog.records if r.thread != threading.main_thread().ident]
    text = "\n".join(r.getMessage() for r in hub)
    assert "GET /authorize?[query omitted] HTTP/1.1" in text and "POST /token HTTP/1.1" in text
    assert "GET /nowhere?[query omitted]" in text
    assert any(r.name.startswith("sqlalchemy.engine") for r in hub)  # statements were logged…
    assert "parameters hidden" in text  # …without their parameters
    _assert_clean(text, secrets)


@pytest.mark.live
def test_no_personal_data_in_the_access_log_of_idp_serve(tmp_path):
    """``idp serve`` with IDP_ACCESS_LOG=1: one access line per request, path without query,
    referrer without query, no cookie or credential; nothing personal in the whole server log."""
    hub = LiveHub(tmp_path, f"sqlite:///{tmp_path / 'idp.sqlite3'}", "sqlite")
    hub.env["IDP_ACCESS_LOG"] = "1"
    hub.cli("init")
    hub.create_user("alice", PASSWORD, NAME, id_number=ID_NUMBER, phone=PHONE, email=EMAIL)
    rp = hub.create_client(name="子站", redirect_uris=["http://127.0.0.1:9/cb"])
    hub.start(workers=1)
    try:
        secrets = _flow(hub.issuer, rp)
        # A request's access line is written once its answer has been sent (``AccessLog``), so the
        # client can have the last answer before its line exists: wait for it (bounded) before stopping.
        deadline = time.monotonic() + 10
        while '"GET /nowhere' not in hub.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        hub.stop()
    text = hub.log_path.read_text()
    assert '"GET /authorize?[query omitted] HTTP/1.1" 303' in text, text[-3000:]
    assert '"POST /login HTTP/1.1" 303' in text and '"GET /nowhere?[query omitted] HTTP/1.1" 404' in text
    _assert_clean(text, secrets)


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def test_access_log_middleware_never_carries_a_query_cookie_or_credential():
    """``idp.logs.AccessLog`` (any WSGI server): the path and referrer lose their query; cookies,
    credentials (Basic or Bearer), the user name and the redirect location never reach the line,
    as text or as JSON; the JSON line carries the request id; an app that raises is logged as 500."""
    import json

    from idp.logs import AccessLog, JsonFormatter, access_log

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/boom":
            raise RuntimeError("boom")
        environ["idp.request_id"] = "req-42"
        start_response("303 SEE OTHER", [("Location", f"/login?login_hint={PHONE}"),
                                         ("Set-Cookie", "idp_session=s3cr3t")])
        return [b"see ", b"other"]

    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/login?next=%2F&login_hint={PHONE}", "PATH_INFO": "/login",
               "QUERY_STRING": f"next=%2F&login_hint={PHONE}", "SERVER_PROTOCOL": "HTTP/1.1",
               "REMOTE_ADDR": "127.0.0.1", "HTTP_REFERER": f"https://rp.example.cn/?id={ID_NUMBER}",
               "HTTP_COOKIE": "idp_session=s3cr3t", "HTTP_AUTHORIZATION": "Basic YWxpY2U6czNjcjN0",
               "REMOTE_USER": "alice", "HTTP_USER_AGENT": "Mozilla/5.0"}
    lines = _Lines()
    access_log.addHandler(lines)
    level, access_log.level = access_log.level, logging.INFO
    try:
        body = AccessLog(app)(dict(environ), lambda status, headers, exc_info=None: None)
        chunks = iter(body)
        assert next(chunks) == b"see " and not lines.records  # logged once the body is done
        assert list(chunks) == [b"other"] and len(lines.records) == 1
        body.close()  # not twice
        granian_like = {k: v for k, v in environ.items() if k != "RAW_URI"}  # a server without RAW_URI
        AccessLog(app)(dict(granian_like, HTTP_AUTHORIZATION="Bearer t0ken"), lambda *a: None).close()
        with pytest.raises(RuntimeError):
            AccessLog(app)(dict(environ, PATH_INFO="/boom", RAW_URI="/boom", QUERY_STRING=""), lambda *a: None)
    finally:
        access_log.removeHandler(lines)
        access_log.level = level
    assert len(lines.records) == 3
    texts = [r.getMessage() for r in lines.records] + [JsonFormatter().format(r) for r in lines.records]
    for text in texts:
        for value in (PHONE, ID_NUMBER, "s3cr3t", "YWxpY2U6czNjcjN0", "t0ken", "alice", "login_hint"):
            assert value not in text, f"{value} logged: {text}"
    first, second, boom = lines.records
    assert first.getMessage() == ('127.0.0.1 "GET /login?[query omitted] HTTP/1.1" 303 9 %.1fms '
                                  '"https://rp.example.cn/?[query omitted]" "Mozilla/5.0"' % first.duration_ms)
    assert second.path == "/login?[query omitted]" and second.status == 303
    assert boom.status == 500 and boom.path == "/boom"
    line = json.loads(JsonFormatter().format(first))
    assert line["request_id"] == "req-42" and line["logger"] == "idp.access"
    assert {k: line[k] for k in ("method", "path", "status", "bytes", "referrer", "user_agent")} == {
        "method": "GET", "path": "/login?[query omitted]", "status": 303, "bytes": 9,
        "referrer": "https://rp.example.cn/?[query omitted]", "user_agent": "Mozilla/5.0"}
