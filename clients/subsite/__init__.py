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
    SUBSITE_POST_LOGOUT_REDIRECT_URI   default http://127.0.0.1:<port>/
    SUBSITE_SESSION_LIFETIME           seconds a sign-in lasts (default 43200, 12 h)
    SUBSITE_PROVIDER       (create_app only) an object with ``metadata()`` and ``key_set(refresh=False)``
                           replacing discovery + JWKS over HTTP for logout (tests); see logout.Provider

Logout (OpenID Connect RP-Initiated Logout 1.0, Back-Channel Logout 1.0, Front-Channel Logout 1.0):

    GET  /logout                 ends the local session, then sends the browser to the provider's
                                 ``end_session_endpoint`` with id_token_hint, client_id,
                                 post_logout_redirect_uri and a state checked on the way back
    POST /backchannel-logout     the provider's logout token (validated in logout.py); ends every
                                 session of its sid (or of its sub)
    GET  /frontchannel-logout    ?iss=&sid= in the provider's hidden iframe; ends this browser's session

Sessions are signed cookies, so a logout the provider reports from elsewhere is kept in an
in-process ``LogoutStore`` (``app.extensions["subsite_logout_store"]``) and every request checks its
session against it. That store lives in one process: run one subsite process per port.

Any other key (TESTING, ...) is passed to Flask's config as is.
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from datetime import timedelta

from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_client import OAuth, OAuthError
from flask import Flask, g, jsonify, redirect, render_template_string, request, session, url_for
from markupsafe import Markup

from . import templates
from .logout import LogoutStore, LogoutTokenError, Provider, ReplayedLogoutToken, validate_logout_token

__all__ = ["create_app"]

log = logging.getLogger(__name__)

DEFAULTS = {
    "SUBSITE_NAME": "部门子站",
    "SUBSITE_PORT": "5001",
    "SUBSITE_ISSUER": "http://127.0.0.1:5000",
    "SUBSITE_CLIENT_ID": "",
    "SUBSITE_CLIENT_SECRET": "",
    "SUBSITE_SCOPE": "openid profile email",
    "SUBSITE_SESSION_LIFETIME": "43200",
}
ENV_KEYS = (*DEFAULTS, "SUBSITE_SECRET_KEY", "SUBSITE_REDIRECT_URI", "SUBSITE_POST_LOGOUT_REDIRECT_URI")
# What a sign-in leaves in the session (the pending Authlib state and logout state are kept apart).
_SIGNED_IN_KEYS = ("user", "id_token", "auth")
BACKCHANNEL_MAX_BODY = 64 * 1024
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
    client_id = str(settings["SUBSITE_CLIENT_ID"])
    redirect_uri = settings.get("SUBSITE_REDIRECT_URI") or f"http://127.0.0.1:{port}/callback"
    post_logout_redirect_uri = settings.get("SUBSITE_POST_LOGOUT_REDIRECT_URI") or f"http://127.0.0.1:{port}/"
    lifetime = float(settings["SUBSITE_SESSION_LIFETIME"])

    app = Flask(__name__)
    app.config.update({k: v for k, v in settings.items() if not k.startswith("SUBSITE_")})
    app.config["SECRET_KEY"] = (settings.get("SUBSITE_SECRET_KEY") or settings.get("SECRET_KEY")
                                or secrets.token_hex(32))
    # Cookies are not isolated by port: two subsites on 127.0.0.1 need two cookie names.
    app.config["SESSION_COOKIE_NAME"] = f"subsite_{port}"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    # Flask refuses session cookies signed longer ago than this: no cookie outlives the logout store.
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=lifetime)
    app.config["SUBSITE"] = {"name": site_name, "issuer": issuer, "port": port, "redirect_uri": redirect_uri,
                             "post_logout_redirect_uri": post_logout_redirect_uri, "session_lifetime": lifetime}

    oauth = OAuth(app)
    oauth.register(
        "idp",
        client_id=client_id,
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
    # Discovery + JWKS for logout go through this one object (tests put a fake provider here).
    app.extensions["subsite_provider"] = settings.get("SUBSITE_PROVIDER") or Provider(oauth.idp)
    store = LogoutStore(lifetime=lifetime)
    app.extensions["subsite_logout_store"] = store

    def provider():
        return app.extensions["subsite_provider"]

    def error_page(status: int, message_zh: str, message_en: str, error: str | None = None,
                   description: str | None = None):
        html = _page(site_name, "登录失败 / Sign-in failed", templates.ERROR, message_zh=message_zh,
                     message_en=message_en, error=error, description=description)
        return html, status, {"Content-Type": "text/html; charset=utf-8"}

    def end_local_session() -> None:
        """Forget the sign-in; an Authlib state of a sign-in under way (another tab) stays."""
        for key in _SIGNED_IN_KEYS:
            session.pop(key, None)

    @app.before_request
    def enforce_logout():
        """A session the provider ended elsewhere (Back-Channel Logout 1.0 §2.7: "the RP MUST
        ... log out"; Front-Channel Logout 1.0 §2) is cleared before anything renders."""
        if "user" not in session:
            return
        auth = session.get("auth")
        if not isinstance(auth, dict) or not isinstance(auth.get("login_at"), (int, float)):
            end_local_session()  # a session from before logout support: sign in again
            g.session_ended = "expired"
        elif time.time() - auth["login_at"] > lifetime:
            end_local_session()
            g.session_ended = "expired"
        elif store.is_ended(auth.get("sid"), auth.get("sub"), auth["login_at"]):
            end_local_session()
            g.session_ended = "logout"

    @app.get("/")
    def index():
        notice = g.get("session_ended")
        # RP-Initiated Logout 1.0 §3: back from the provider's logout with the state we sent.
        expected = session.pop("logout_state", None)
        returned = request.args.get("state")
        if expected and isinstance(returned, str) and hmac.compare_digest(expected.encode(), returned.encode()):
            notice = "logout"
        user = session.get("user")
        display_name = None
        if user:
            display_name = user.get("name") or user.get("preferred_username") or user.get("sub")
        return _page(site_name, "首页 / Home", templates.INDEX, user=user, display_name=display_name,
                     notice=None if user else notice)

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
        # What logout needs: the provider session (sid), the user (sub), and when this sign-in began.
        sid = id_claims.get("sid")
        session["auth"] = {"iss": id_claims.get("iss"), "sub": id_claims.get("sub"),
                           "sid": sid if isinstance(sid, str) and sid else None, "login_at": time.time()}
        return redirect(url_for("index"))

    @app.get("/logout")
    def logout():
        """RP-Initiated Logout 1.0 §2: end the local session, then ask the provider to end its own.

        The endpoint comes from discovery (§2.1, ``end_session_endpoint``); ``id_token_hint`` (the
        RECOMMENDED hint, §2), ``client_id``, the registered ``post_logout_redirect_uri`` and a
        ``state`` that ``index`` checks when the provider sends the browser back (§3)."""
        id_token = session.get("id_token")
        session.clear()
        if not id_token:
            return redirect(url_for("index"))
        try:
            endpoint = provider().metadata().get("end_session_endpoint")
        except Exception as exc:  # provider unreachable: the local sign-out stands
            log.warning("cannot load the provider's metadata for logout: %r", exc)
            endpoint = None
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            return redirect(url_for("index"))
        state = secrets.token_urlsafe(24)
        session["logout_state"] = state
        return redirect(add_params_to_uri(endpoint, [
            ("id_token_hint", id_token),
            ("client_id", client_id),
            ("post_logout_redirect_uri", post_logout_redirect_uri),
            ("state", state),
        ]))

    def backchannel_answer(status: int, description: str | None = None):
        body = {} if description is None else {"error": "invalid_request", "error_description": description}
        response = jsonify(body) if description is not None else app.response_class(b"", mimetype="text/plain")
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"  # Back-Channel Logout 1.0 §2.8
        return response

    @app.post("/backchannel-logout")
    def backchannel_logout():
        """Back-Channel Logout 1.0 §2.5 (a form POST with ``logout_token``), §2.6 (validation, in
        ``logout.validate_logout_token``), §2.7 (end the sessions: those of ``sid``, or every one of
        ``sub`` when only ``sub`` is given) and §2.8 (200, or 400 with a JSON error; no-store)."""
        if request.content_length is not None and request.content_length > BACKCHANNEL_MAX_BODY:
            return backchannel_answer(400, "the request is too large")
        if request.mimetype != "application/x-www-form-urlencoded":
            return backchannel_answer(400, "the logout token must be form-encoded")
        tokens = request.form.getlist("logout_token")
        if len(tokens) != 1:
            return backchannel_answer(400, "exactly one logout_token is required")
        try:
            claims = validate_logout_token(tokens[0], provider=provider(), issuer=issuer, client_id=client_id,
                                           store=store)
        except ReplayedLogoutToken:
            # The provider resends a delivery whose answer it never saw (same jti): acknowledge it so it
            # stops retrying, but act only once (a replay must not end a newer sign-in).
            log.info("back-channel logout: already processed (replayed jti)")
            return backchannel_answer(200)
        except LogoutTokenError as exc:
            log.info("back-channel logout refused: %s", exc)
            return backchannel_answer(400, str(exc))
        if claims.get("sid"):
            store.end_sid(claims["sid"])
        else:
            store.end_sub(claims["sub"])
        log.info("back-channel logout: %s", f"sid {claims['sid']}" if claims.get("sid") else f"sub {claims['sub']}")
        return backchannel_answer(200)

    @app.get("/frontchannel-logout")
    def frontchannel_logout():
        """Front-Channel Logout 1.0 §2: rendered by the provider in a hidden iframe. With ``iss`` and
        ``sid`` (if either is given both must be) only the session of that provider session ends,
        and its sid is remembered as ended (like a back-channel logout); without them, this
        browser's session ends. Anything else is ignored quietly. §2: not cached."""
        iss, sid = request.args.get("iss"), request.args.get("sid")
        auth = session.get("auth") if isinstance(session.get("auth"), dict) else {}
        if iss is None and sid is None:
            if "user" in session:
                end_local_session()
        elif iss == issuer and sid and auth.get("sid") == sid and "user" in session:
            store.end_sid(sid)
            end_local_session()
        html = render_template_string(templates.FRONTCHANNEL, site_name=site_name)
        response = app.response_class(html, mimetype="text/html")
        response.headers["Cache-Control"] = "no-cache, no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    return app
