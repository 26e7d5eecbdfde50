"""/account (the account home) and /account/password. Signed-in people only."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request

from ..accounts.protection import mask_email, mask_id_number, mask_phone, protector
from ..accounts.service import change_password
from ..authn.views import login_redirect
from ..config import level_for_acr
from ..errors import DomainError
from ..sessions.current import current_session
from .forms import CloseAccountForm, PasswordChangeForm, show_error

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
    form, status = CloseAccountForm(), 200
    second_factor = totp.has_totp(person)
    blocked = obstacles(person)
    if request.method == "POST" and not blocked:
        valid = form.validate_on_submit()
        if second_factor and not (form.otp.data or "").strip():
            form.otp.errors, valid = [*form.otp.errors, _("This field is required.")], False
        if form.csrf_token.errors:
            form.form_errors.append(_("The page expired; please try again."))
        if not valid:
            status = 400
        else:
            try:
                totp.require_password(person, form.password.data, failed_action="account.close_failed")
                if second_factor and totp.check_second_factor(person, form.otp.data, purpose="close") is None:
                    raise DomainError(_("That code is not right. Enter the current 6-digit code from your app, "
                                        "or a recovery code."), code="wrong_code")
                done = close_account(person, actor=f"person:{person.sub}")
            except DomainError as exc:
                show_error(form, exc, default_field="otp" if exc.code == "wrong_code" else "password")
                status = exc.status
            else:
                return signed_out(done["front_channel"], None, None,
                                  [_("Your account is closed and your personal information on it has been deleted.")])
    return render_template("portal/close.html", form=form, person=person, second_factor=second_factor,
                           blocked=blocked), status
