"""/reset: step 1 a login name gets a code to the account's phone or email; step 2 the code and a new
password. The same answers whether or not an account matched."""
from __future__ import annotations

from flask import Blueprint, make_response, redirect, render_template, request, session

from ..accounts import recovery
from ..errors import DomainError
from ..sessions.current import clear_session_cookie
from .forms import ResetForm, ResetRequestForm, show_error

bp = Blueprint("recovery", __name__)
STATE = "reset"


@bp.route("/reset", methods=["GET", "POST"])
def start():
    form = ResetRequestForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                ticket = recovery.request_reset(form.login.data)
            except DomainError as exc:
                show_error(form, exc, default_field="login")
                status = exc.status
            else:
                session[STATE] = {"ticket": ticket}
                return redirect("/reset/verify", code=303)
    return render_template("portal/reset_start.html", form=form), status


@bp.route("/reset/verify", methods=["GET", "POST"])
def verify():
    state = session.get(STATE)
    if not state:
        return redirect("/reset", code=303)
    form = ResetForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                recovery.complete_reset(state["ticket"], form.code.data, form.password.data)
            except DomainError as exc:
                show_error(form, exc, default_field="code")
                status = exc.status
            else:
                session.pop(STATE, None)
                resp = make_response(redirect("/reset/done", code=303))
                clear_session_cookie(resp)  # every session of the person ended, this browser's too
                return resp
    return render_template("portal/reset_verify.html", form=form), status


@bp.get("/reset/done")
def done():
    return render_template("portal/reset_done.html")
