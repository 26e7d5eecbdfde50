"""A department subsite: a small Flask relying party of the city's OpenID provider.

Everything about the provider comes from ``<issuer>/.well-known/openid-configuration``;
the sign-in is the authorization code flow with PKCE (S256), state and nonce. Authlib
validates the ID token against the provider's JWKS, then the subsite fetches userinfo.

Configuration (``create_app(config)`` keys override the environment of the same name):

    SUBSITE_NAME           display name of the department (default "部门子站")
    SUBSITE_PORT           port the subsite listens on, 127.0.0.1 (default 5001)
    SUBSITE_ISSUER         issuer URL of the provider, e.g. http://127.0.0.1:5000
    SUBSITE_CLIENT_ID      client registered at the provider (client_secret_basic)
    SUBSITE_CLIENT_SECRET
    SUBSITE_SECRET_KEY     Flask session key (random per process if absent); SECRET_KEY also works
    SUBSITE_REDIRECT_URI   default http://127.0.0.1:<port>/callback
    SUBSITE_SCOPE          default "openid profile email"

Any other key (TESTING, ...) is passed to Flask's config as is.
"""
from __future__ import annotations

import logging
import os
import secrets

from authlib.integrations.flask_client import OAuth, OAuthError
from flask import Flask, redirect, render_template_string, request, session, url_for
from markupsafe import Markup

from . import templates

__all__ = ["create_app"]

log = logging.getLogger(__name__)

DEFAULTS = {
    "SUBSITE_NAME": "部门子站",
    "SUBSITE_PORT": "5001",
    "SUBSITE_ISSUER": "http://127.0.0.1:5000",
    "SUBSITE_CLIENT_ID": "",
    "SUBSITE_CLIENT_SECRET": "",
    "SUBSITE_SCOPE": "openid profile email",
}
ENV_KEYS = (*DEFAULTS, "SUBSITE_SECRET_KEY", "SUBSITE_REDIRECT_URI")
# Technical claims of the ID token that say nothing about the user.
_ID_TOKEN_ONLY = {"aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "azp", "jti", "sid", "auth_time",
                  "acr", "amr", "iss"}


def _settings(config: dict | None) -> dict:
    settings = dict(DEFAULTS)
    for key in ENV_KEYS:
        if os.environ.get(key):
            settings[key] = os.environ[key]
    settings.update(config or {})
    return settings


def _page(site_name: str, title: str, inner: str, **context) -> str:
    body = render_template_string(inner, site_name=site_name, **context)
    return render_template_string(templates.BASE, site_name=site_name, title=title, body=Markup(body))


def create_app(config: dict | None = None) -> Flask:
    settings = _settings(config)
    port = int(settings["SUBSITE_PORT"])
    issuer = str(settings["SUBSITE_ISSUER"]).rstrip("/")
    site_name = str(settings["SUBSITE_NAME"])
    redirect_uri = settings.get("SUBSITE_REDIRECT_URI") or f"http://127.0.0.1:{port}/callback"

    app = Flask(__name__)
    app.config.update({k: v for k, v in settings.items() if not k.startswith("SUBSITE_")})
    app.config["SECRET_KEY"] = (settings.get("SUBSITE_SECRET_KEY") or settings.get("SECRET_KEY")
                                or secrets.token_hex(32))
    # Cookies are not isolated by port: two subsites on 127.0.0.1 need two cookie names.
    app.config["SESSION_COOKIE_NAME"] = f"subsite_{port}"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SUBSITE"] = {"name": site_name, "issuer": issuer, "port": port, "redirect_uri": redirect_uri}

    oauth = OAuth(app)
    oauth.register(
        "idp",
        client_id=settings["SUBSITE_CLIENT_ID"],
        client_secret=settings["SUBSITE_CLIENT_SECRET"],
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": settings["SUBSITE_SCOPE"],
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
            "timeout": 10,
        },
    )
    app.extensions["subsite_oauth"] = oauth

    def error_page(status: int, message_zh: str, message_en: str, error: str | None = None,
                   description: str | None = None):
        html = _page(site_name, "登录失败 / Sign-in failed", templates.ERROR, message_zh=message_zh,
                     message_en=message_en, error=error, description=description)
        return html, status, {"Content-Type": "text/html; charset=utf-8"}

    @app.get("/")
    def index():
        user = session.get("user")
        display_name = None
        if user:
            display_name = user.get("name") or user.get("preferred_username") or user.get("sub")
        return _page(site_name, "首页 / Home", templates.INDEX, user=user, display_name=display_name)

    @app.get("/login")
    def login():
        try:
            return oauth.idp.authorize_redirect(redirect_uri)
        except Exception as exc:  # provider unreachable, bad metadata ...
            log.warning("cannot start sign-in at %s: %r", issuer, exc)
            return error_page(502, "无法连接统一身份认证平台", "The city sign-in service cannot be reached")

    @app.get("/callback")
    def callback():
        if request.args.get("error"):
            # Drop the pending state of this attempt so it cannot be replayed.
            state = request.args.get("state")
            if state:
                session.pop(f"_state_idp_{state}", None)
            return error_page(400, "统一身份认证平台拒绝了登录请求", "The sign-in service refused the request",
                              error=request.args.get("error")[:100],
                              description=(request.args.get("error_description") or "")[:300] or None)
        if not request.args.get("code") or not request.args.get("state"):
            return error_page(400, "回调缺少参数", "The callback is missing its parameters")
        try:
            metadata = oauth.idp.load_server_metadata()
            # RFC 9207: when the provider says who it is, it must be the one we asked.
            iss = request.args.get("iss")
            if iss is not None and iss != metadata.get("issuer"):
                return error_page(400, "签发者不匹配", "The issuer of the response does not match",
                                  error="invalid_issuer")
            token = oauth.idp.authorize_access_token()
            id_claims = token.get("userinfo")
            if "id_token" not in token or not id_claims:
                return error_page(400, "未收到有效的身份令牌", "No valid ID token was received",
                                  error="invalid_id_token")
            userinfo = dict(oauth.idp.userinfo(token=token))
            if userinfo.get("sub") != id_claims.get("sub"):
                return error_page(400, "用户信息与身份令牌不一致", "Userinfo does not match the ID token",
                                  error="invalid_userinfo")
        except OAuthError as exc:
            log.info("sign-in failed: %s %s", exc.error, exc.description)
            return error_page(400, "登录未能完成", "The sign-in could not be completed",
                              error=exc.error, description=exc.description)
        except Exception as exc:  # bad signature, wrong nonce/aud/iss, expired, network ...
            log.warning("sign-in failed: %r", exc)
            return error_page(400, "身份令牌或令牌交换校验失败", "Token exchange or ID token validation failed",
                              error=type(exc).__name__)
        user = {k: v for k, v in id_claims.items() if k not in _ID_TOKEN_ONLY}
        user.update(userinfo)
        # A new sign-in gets a fresh session (no fixation); keep nothing from before.
        session.clear()
        session["user"] = user
        session["id_token"] = token["id_token"]
        return redirect(url_for("index"))

    @app.get("/logout")
    def logout():
        session.clear()
        return redirect(url_for("index"))

    return app
