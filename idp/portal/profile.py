"""/account (the account home) and /account/password. Signed-in people only."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request

from ..accounts.protection import mask_email, mask_id_number, mask_phone, protector
from ..accounts.service import change_password
from ..authn.views import login_redirect
from ..config import level_for_acr
from ..errors import DomainError
from ..sessions.current import current_session
from .forms import PasswordChangeForm, ReauthenticationForm, show_error

bp = Blueprint("profile", __name__)


def _masked(person) -> dict:
    p = protector()
    id_number = p.decrypt(person.id_number_enc, "id_number")
    phone = p.decrypt(person.phone_enc, "phone")
    email = p.decrypt(person.email_enc, "email")
    return {"id_number": mask_id_number(id_number) if id_number else None,
            "phone": mask_phone(phone) if phone else None,
            "email": mask_email(email) if email else None}


@bp.get("/account")
def home():
    s = current_session()
    if s is None:
        return login_redirect("/account")
    return render_template("portal/account.html", person=s.person, masked=_masked(s.person),
                           session_level=level_for_acr(current_app.config, s.acr) or 1,
                           changed=request.args.get("changed") == "password")


@bp.get("/account/activity")
def activity():
    """The account's recent security events, for its holder to spot what was not them."""
    from ..accounts.activity import LIMIT, recent_activity

    s = current_session()
    if s is None:
        return login_redirect("/account/activity")
    return render_template("portal/activity.html", person=s.person, entries=recent_activity(s.person), limit=LIMIT)


@bp.route("/account/password", methods=["GET", "POST"])
def password():
    s = current_session()
    if s is None:
        return login_redirect("/account/password")
    form = PasswordChangeForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                change_password(s.person, form.current_password.data, form.password.data, keep_session=s)
            except DomainError as exc:
                show_error(form, exc, default_field="current_password")
                status = exc.status
            else:
                return redirect("/account?changed=password", code=303)
    return render_template("portal/password.html", form=form, person=s.person), status


def _reauthenticated(form, person, *, second_factor: bool, failed_action: str, purpose: str) -> int | None:
    """A sensitive request's re-authentication (``ReauthenticationForm``): the current password, and
    the second factor when the account has one (both throttled and audited like a login). None when
    it passed; otherwise the HTTP status, with the reason put on the form."""
    from flask_babel import gettext as _

    from ..authn import totp

    valid = form.validate_on_submit()
    if second_factor and not (form.otp.data or "").strip():
        form.otp.errors, valid = [*form.otp.errors, _("This field is required.")], False
    if form.csrf_token.errors:
        form.form_errors.append(_("The page expired; please try again."))
    if not valid:
        return 400
    try:
        totp.require_password(person, form.password.data, failed_action=failed_action)
        if second_factor:
            totp.require_second_factor(person, form.otp.data, purpose=purpose)
    except DomainError as exc:
        show_error(form, exc, default_field="otp" if exc.code == "wrong_code" else "password")
        return exc.status
    return None


@bp.route("/account/close", methods=["GET", "POST"])
def close():
    """Close the account (``accounts.closure``): what it does, what stands in the way, and the form."""
    from flask_babel import gettext as _

    from ..accounts.closure import close_account, obstacles
    from ..authn import totp
    from ..sessions.views import signed_out

    s = current_session()
    if s is None:
        return login_redirect("/account/close")
    person = s.person
    form, status = ReauthenticationForm(), 200
    second_factor = totp.has_totp(person)
    blocked = obstacles(person)
    if request.method == "POST" and not blocked:
        status = _reauthenticated(form, person, second_factor=second_factor, failed_action="account.close_failed",
                                  purpose="close")
        if status is None:
            try:
                done = close_account(person, actor=f"person:{person.sub}")
            except DomainError as exc:  # it became closable no longer since the page was shown
                show_error(form, exc)
                status = exc.status
            else:
                return signed_out(done["front_channel"], None, None,
                                  [_("Your account is closed and your personal information on it has been deleted.")])
    return render_template("portal/close.html", form=form, person=person, second_factor=second_factor,
                           blocked=blocked), status


@bp.route("/account/data", methods=["GET", "POST"])
def data_copy():
    """A copy of everything the hub holds about the person (PIPL art. 45), as a JSON download, after
    re-authentication: it has the identifiers unmasked."""
    import json

    from flask import Response

    from ..accounts.copy import personal_data
    from ..authn import totp

    s = current_session()
    if s is None:
        return login_redirect("/account/data")
    person = s.person
    form, status = ReauthenticationForm(), 200
    second_factor = totp.has_totp(person)
    if request.method == "POST":
        status = _reauthenticated(form, person, second_factor=second_factor, failed_action="account.copy_failed",
                                  purpose="copy")
        if status is None:
            body = json.dumps(personal_data(person), ensure_ascii=False, indent=2, default=str)
            return Response(body, content_type="application/json; charset=utf-8", headers={
                "Content-Disposition": f'attachment; filename="city-account-{person.sub[:12]}.json"',
                "Cache-Control": "no-store"})
    return render_template("portal/data.html", form=form, person=person, second_factor=second_factor), status
