"""JSON log lines (IDP_LOG_FORMAT=json) and request ids: one object per line, the response's
X-Request-Id in the lines logged while answering it, a forged id from an untrusted peer replaced, and
still nothing personal or secret in any line — even at DEBUG, through a login and a token request."""
from __future__ import annotations

import json
import logging
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.conftest import PASSWORD, basic, form_fields, pkce_pair

PHONE = "13800138000"


@pytest.fixture
def app_config():
    return {"LOG_FORMAT": "json"}


@pytest.fixture
def json_logs(app, capsys):
    """Every record at DEBUG through the hub's JSON handler; yields a reader of the new lines."""
    root = logging.getLogger()
    handlers = [h for h in root.handlers if getattr(h, "_idp_json", False)]
    assert handlers, "IDP_LOG_FORMAT=json installs a JSON handler on the root logger"
    # Alembic's logging configuration (the template database) holds sqlalchemy at WARNING.
    loggers = [root, logging.getLogger("sqlalchemy"), logging.getLogger("sqlalchemy.engine")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    capsys.readouterr()

    def lines() -> list[dict]:
        err = capsys.readouterr().err
        # Each line of ours is JSON (alembic's configuration may have left a text handler: skip its lines).
        return [json.loads(line) for line in err.splitlines() if line.startswith("{")]

    try:
        yield lines
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)
        for h in handlers:
            root.removeHandler(h)


def test_login_with_a_phone_hint_and_a_token_request_log_nothing_personal(client, rp, user, json_logs):
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": rp["client_id"], "redirect_uri": rp["redirect_uri"],
              "scope": "openid profile phone", "state": "st-1", "nonce": "n-1", "login_hint": PHONE,
              "code_challenge": challenge, "code_challenge_method": "S256"}
    resp = client.get("/authorize?" + urlencode(params))
    login_page = client.get(resp.location)
    fields = form_fields(login_page.get_data(as_text=True))
    resp = client.post("/login", data={**fields, "username": PHONE, "password": PASSWORD})
    assert resp.status_code == 303
    login_id = resp.headers["X-Request-Id"]
    resp = client.get(resp.location)
    if resp.status_code == 200:  # consent
        html = resp.get_data(as_text=True)
        action = re.search(r'<form method="post" action="([^"]+)"', html).group(1).replace("&amp;", "&")
        resp = client.post(action, data={**form_fields(html), "decision": "allow"})
    code = parse_qs(urlsplit(resp.location).query)["code"][0]
    token = client.post("/token", headers=basic(rp), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": rp["redirect_uri"],
        "code_verifier": verifier})
    assert token.status_code == 200
    t = token.get_json()
    lines = json_logs()
    assert lines, "DEBUG logging produced lines (the SQL statements at least)"
    for line in lines:
        assert {"time", "level", "logger", "message", "request_id"} <= set(line)
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    for secret in (PHONE, "11010519491231002X", "alice@example.cn", "张三", PASSWORD, code, verifier,
                   t["access_token"], t["refresh_token"], t["id_token"], rp["client_secret"], "login_hint"):
        assert secret not in text, f"{secret[:12]}… logged"
    # The lines logged while answering the login (its SQL at least) carry its response's request id.
    # (The code exchange logs nothing at all: its statements run on the driver connection.)
    assert re.fullmatch(r"[0-9a-f]{32}", login_id) and re.fullmatch(r"[0-9a-f]{32}", token.headers["X-Request-Id"])
    assert any(line["request_id"] == login_id for line in lines)


def test_lines_of_one_request_carry_its_id(client, json_logs):
    resp = client.get("/readyz")
    rid = resp.headers["X-Request-Id"]
    lines = json_logs()
    assert lines and all(line["request_id"] == rid for line in lines)  # its SELECT, logged at INFO


def test_a_forged_request_id_from_an_untrusted_peer_is_replaced(client):
    resp = client.get("/healthz", environ_base={"REMOTE_ADDR": "203.0.113.9",
                                                "HTTP_X_REQUEST_ID": "forged\nINFO fake line"})
    assert resp.headers["X-Request-Id"] != "forged\nINFO fake line"
    resp = client.get("/healthz", headers={"X-Request-Id": "abc123"}, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-Id"])
    assert resp.headers.getlist("X-Request-Id") == [resp.headers["X-Request-Id"]]


@pytest.mark.parametrize("app_config", [{"LOG_FORMAT": "json", "TRUSTED_PROXIES": "10.0.0.5"}])
def test_a_trusted_proxy_passes_its_request_id(client):
    nginx = {"REMOTE_ADDR": "10.0.0.5"}
    assert client.get("/healthz", headers={"X-Request-Id": "4f9c0d1e2a"}, environ_base=nginx) \
        .headers["X-Request-Id"] == "4f9c0d1e2a"
    # Even from the proxy, only something that looks like an id goes into the logs.
    assert client.get("/healthz", environ_base={**nginx, "HTTP_X_REQUEST_ID": "bad id\nx"}) \
        .headers["X-Request-Id"] != "bad id\nx"
    assert client.get("/healthz", headers={"X-Request-Id": "4f9c0d1e2a"},
                      environ_base={"REMOTE_ADDR": "10.0.0.6"}).headers["X-Request-Id"] != "4f9c0d1e2a"


def test_log_format_auto_means_json_for_a_production_server_only():
    from idp.config import ConfigError, load, log_format

    assert log_format({"LOG_FORMAT": "auto", "ENV": "production"}, serving=True) == "json"
    assert log_format({"LOG_FORMAT": "auto", "ENV": "production"}) == "text"  # CLI commands
    assert log_format({"LOG_FORMAT": "auto", "ENV": "development"}, serving=True) == "text"
    assert log_format({"LOG_FORMAT": "json", "ENV": "development"}) == "json"
    with pytest.raises(ConfigError, match="IDP_LOG_FORMAT"):
        load({"LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="IDP_METRICS_ALLOWED"):
        load({"METRICS_ALLOWED": "not-a-network"})
