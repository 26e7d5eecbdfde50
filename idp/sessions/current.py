"""The SSO session of the current request (cookie ↔ server-side record)."""
from __future__ import annotations

from flask import Response, current_app, g, request

from .models import SsoSession
from .service import find_session


def current_session() -> SsoSession | None:
    if "_idp_sso" not in g:
        g._idp_sso = find_session(request.cookies.get(current_app.config["SESSION_COOKIE"]))
    return g._idp_sso


def set_session_cookie(resp: Response, cookie: str) -> None:
    cfg = current_app.config
    resp.set_cookie(cfg["SESSION_COOKIE"], cookie, httponly=True, samesite="Lax", path="/",
                    secure=cfg["ISSUER"].startswith("https://"), max_age=cfg["SESSION_ABSOLUTE_TTL"])


def clear_session_cookie(resp: Response) -> None:
    cfg = current_app.config
    resp.delete_cookie(cfg["SESSION_COOKIE"], path="/", httponly=True, samesite="Lax",
                       secure=cfg["ISSUER"].startswith("https://"))
