"""The login page (form contract: inputs ``username`` and ``password``, with a CSRF token)."""
from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from flask import Blueprint, make_response, redirect, render_template, request, session

from ..errors import DomainError
from ..sessions.current import current_session, set_session_cookie
from .forms import LoginForm
from .service import login_with_password

bp = Blueprint("authn", __name__)


def login_redirect(next_url: str, login_hint: str | None = None):
    """Send the browser to the login page, to come back to ``next_url`` (one of our paths)."""
    query = {"next": next_url}
    if login_hint:
        query["login_hint"] = login_hint
    return redirect("/login?" + urlencode(query), code=303)


def safe_next(target: str | None) -> str:
    """Only our own paths: never an absolute or scheme-relative URL (no open redirect)."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next"))
        hint = request.args.get("login_hint", "")
        if hint and len(hint) <= 64:
            form.username.data = hint
        return render_template("login.html", form=form)
    error = None
    if form.validate_on_submit():
        try:
            result = login_with_password(form.username.data, form.password.data, current_session())
        except DomainError as exc:  # locked: show the form again with the reason
            form.next.data = safe_next(form.next.data)
            return render_template("login.html", form=form, error=exc.message), exc.status
        if result is not None:
            sso, cookie = result
            session["fresh_sid"] = sso.sid  # lets a prompt=login/max_age request see this login
            resp = make_response(redirect(safe_next(form.next.data), code=303))
            set_session_cookie(resp, cookie)
            return resp
        error = "用户名或密码错误 / Wrong username or password"
    elif form.csrf_token.errors:
        error = "页面已过期，请重试 / The page expired; please try again"
    else:
        error = "请输入用户名和密码 / Enter your username and password"
    form.next.data = safe_next(form.next.data)
    return render_template("login.html", form=form, error=error), 400 if form.csrf_token.errors else 200
