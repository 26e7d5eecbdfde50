"""/account (the account home) and /account/password. Signed-in people only."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request

from ..accounts.protection import mask_email, mask_id_number, mask_phone, protector
from ..accounts.service import change_password
from ..authn.views import login_redirect
from ..config import level_for_acr
from ..errors import DomainError
from ..sessions.current import current_session
from .forms import PasswordChangeForm, show_error

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
