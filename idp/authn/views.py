"""The login pages: the password (form contract: ``username``, ``password``), then, for people with
TOTP, a second step (``otp``); and the step-up of a live session asked for by /authorize.

Between the two login steps nothing is signed in: the browser's signed UI session holds only who
passed the password and until when (``MFA_PENDING_TTL``, 5 minutes).
"""
from __future__ import annotations

import time
from urllib.parse import urlencode, urlsplit

from flask import (Blueprint, current_app, flash, make_response, redirect, render_template, request,
                   session)
from flask_babel import gettext as _

from ..accounts.service import get_by_sub
from ..errors import DomainError
from ..sessions.current import current_session, set_session_cookie
from .forms import LoginForm, SecondFactorForm
from .service import SecondFactorRequired, login_with_password, login_with_second_factor, step_up

bp = Blueprint("authn", __name__)

PENDING = "mfa_pending"


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


def _signed_in(sso, cookie, next_url: str):
    session["fresh_sid"] = sso.sid  # lets a prompt=login/max_age request see this login
    resp = make_response(redirect(safe_next(next_url), code=303))
    set_session_cookie(resp, cookie)
    return resp


def _login_page(form: LoginForm, error: str | None, status: int = 200):
    form.next.data = safe_next(form.next.data)
    return render_template("login.html", form=form, error=error), status


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next"))
        hint = request.args.get("login_hint", "")
        if hint and len(hint) <= 64:
            form.username.data = hint
        return render_template("login.html", form=form)
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            return _login_page(form, _("The page expired; please try again."), 400)
        return _login_page(form, _("Enter your username and password."))
    try:
        result = login_with_password(form.username.data, form.password.data, current_session())
    except DomainError as exc:  # locked: show the form again with the reason
        return _login_page(form, exc.message, exc.status)
    if result is None:
        return _login_page(form, _("Wrong username or password."))
    if isinstance(result, SecondFactorRequired):
        session[PENDING] = {"sub": result.person.sub, "next": safe_next(form.next.data),
                            "exp": int(time.time()) + current_app.config["MFA_PENDING_TTL"]}
        return redirect("/login/otp", code=303)
    return _signed_in(*result, form.next.data)


def _pending():
    """(person, next) of the login waiting for its second factor, or (None, next) when there is none
    (never started, expired, or the account was disabled meanwhile)."""
    held = session.get(PENDING)
    if not isinstance(held, dict):
        return None, "/"
    next_url = safe_next(held.get("next"))
    if not isinstance(held.get("exp"), int) or held["exp"] < time.time():
        return None, next_url
    person = get_by_sub(str(held.get("sub")))
    return (person if person is not None and person.active else None), next_url


@bp.route("/login/otp", methods=["GET", "POST"])
def login_second_factor():
    person, next_url = _pending()
    if person is None:
        session.pop(PENDING, None)
        form = LoginForm(formdata=None, next=next_url)
        return _login_page(form, _("Your sign-in took too long or was not started here; please sign in again."))
    form = SecondFactorForm()
    if request.method == "GET":
        return render_template("login_otp.html", form=form)
    error, status = None, 200
    if not form.validate_on_submit():
        error, status = ((_("The page expired; please try again."), 400) if form.csrf_token.errors
                         else (_("Enter the code from your authenticator app."), 200))
    else:
        try:
            result = login_with_second_factor(person, form.otp.data, current_session())
        except DomainError as exc:  # locked
            error, status = exc.message, exc.status
        else:
            if result is not None:
                session.pop(PENDING, None)
                return _signed_in(*result, next_url)
            error = _("That code is not right. Enter the current 6-digit code from your app, or a recovery code.")
    form.otp.data = ""
    return render_template("login_otp.html", form=form, error=error), status


@bp.post("/login/step-up")
def step_up_session():
    """The form of the step-up page (rendered by /authorize): raise the session, then go back there.

    Any refusal is flashed and shown by the step-up page, which /authorize renders again."""
    form = SecondFactorForm()
    next_url = safe_next(form.next.data)
    s = current_session()
    if s is None:
        return login_redirect(next_url)
    if not form.validate_on_submit():
        flash(_("The page expired; please try again.") if form.csrf_token.errors
              else _("Enter the code from your authenticator app."), "error")
        return redirect(next_url, code=303)
    try:
        cookie = step_up(s, form.otp.data)
    except DomainError as exc:  # locked
        flash(exc.message, "error")
        return redirect(next_url, code=303)
    if cookie is None:
        flash(_("That code is not right. Enter the current 6-digit code from your app, or a recovery code."), "error")
        return redirect(next_url, code=303)
    resp = make_response(redirect(next_url, code=303))
    set_session_cookie(resp, cookie)
    return resp
