"""/register: step 1 a phone number or email address gets a code; step 2 the code and the account."""
from __future__ import annotations

from flask import Blueprint, make_response, redirect, render_template, request, session

from ..accounts import registration
from ..authn.views import safe_next
from ..errors import DomainError
from ..sessions.current import current_session, set_session_cookie
from .forms import ButtonForm, CodeRequestForm, RegistrationForm, show_error

bp = Blueprint("registration", __name__)
STATE = "register"  # key of the flow's state in the UI session: the ticket and the masked destination


def _remember(sent: registration.CodeRequest, next_url: str | None = None) -> None:
    state = session.get(STATE) or {}
    session[STATE] = {"ticket": sent.ticket, "masked": sent.masked, "channel": sent.channel, "fresh": sent.fresh,
                      "next": next_url if next_url is not None else state.get("next", "/account")}


@bp.route("/register", methods=["GET", "POST"])
def start():
    form = CodeRequestForm()
    next_url = safe_next(request.values.get("next") or "/account")  # where to land once registered
    status = 200
    if form.validate_on_submit():
        try:
            sent = registration.request_code(form.destination.data)
        except DomainError as exc:
            show_error(form, exc)
            status = exc.status
        else:
            _remember(sent, next_url)
            return redirect("/register/verify", code=303)
    return render_template("portal/register_start.html", form=form, next=next_url), status


@bp.route("/register/verify", methods=["GET", "POST"])
def verify():
    state = session.get(STATE)
    if not state:
        return redirect("/register", code=303)
    form = RegistrationForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                sso, cookie = registration.complete(
                    state["ticket"], form.code.data, username=form.username.data, password=form.password.data,
                    name=form.name.data, id_number=form.id_number.data, previous=current_session())
            except DomainError as exc:
                show_error(form, exc, default_field="code")
                status = exc.status
            else:
                session.pop(STATE, None)
                session["fresh_sid"] = sso.sid  # a login like any other for prompt=login / max_age
                resp = make_response(redirect(safe_next(state.get("next") or "/account"), code=303))
                set_session_cookie(resp, cookie)
                return resp
    return render_template("portal/register_verify.html", form=form, state=state, resend=ButtonForm()), status


@bp.post("/register/resend")
def resend():
    state = session.get(STATE)
    form = ButtonForm()
    if not state or not form.validate_on_submit():
        return redirect("/register", code=303)
    try:
        sent = registration.resend_code(state.get("ticket"))
    except DomainError as exc:
        page = RegistrationForm(formdata=None)
        page.form_errors.append(exc.message)
        return render_template("portal/register_verify.html", form=page, state=state, resend=form), exc.status
    _remember(sent)
    return redirect("/register/verify", code=303)
