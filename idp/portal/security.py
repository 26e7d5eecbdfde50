"""/account/security: two-step verification (TOTP enrollment, recovery codes, turning it off) and the
link to the password change. Thin views over ``authn.totp``."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template
from flask_babel import gettext as _

from ..authn import totp
from ..authn.forms import ConfirmTotpForm, DisableTotpForm, PasswordConfirmForm, RegenerateRecoveryForm
from ..authn.views import login_redirect
from ..errors import DomainError
from ..sessions.current import current_session

bp = Blueprint("security", __name__)
PAGE = "/account/security"


def _page(person, error: str | None = None, status: int = 200, **forms):
    forms.setdefault("start_form", PasswordConfirmForm(formdata=None))
    forms.setdefault("confirm_form", ConfirmTotpForm(formdata=None))
    forms.setdefault("regenerate_form", RegenerateRecoveryForm(formdata=None))
    forms.setdefault("disable_form", DisableTotpForm(formdata=None))
    return render_template("security.html", person=person, status=totp.status(person), error=error, **forms), status


def _form_error(form) -> tuple[str, int]:
    if form.csrf_token.errors:
        return _("The page expired; please try again."), 400
    return _("Fill in every field of the form."), 400


def _run(form_cls, form_name: str, action):
    """Validate the form, run ``action(person, form)``; on refusal show the page again with the reason."""
    s = current_session()
    if s is None:
        return login_redirect(PAGE)
    form = form_cls()
    if not form.validate_on_submit():
        return _page(s.person, *_form_error(form), **{form_name: form})
    try:
        return action(s.person, form)
    except DomainError as exc:
        return _page(s.person, exc.message, exc.status, **{form_name: form_cls(formdata=None)})


@bp.get(PAGE)
def overview():
    s = current_session()
    if s is None:
        return login_redirect(PAGE)
    return _page(s.person)


@bp.post(PAGE + "/totp")
def start_enrollment():
    def action(person, form):
        totp.begin_enrollment(person, form.password.data)
        return redirect(PAGE, code=303)
    return _run(PasswordConfirmForm, "start_form", action)


@bp.post(PAGE + "/totp/confirm")
def confirm_enrollment():
    def action(person, form):
        codes = totp.confirm_enrollment(person, form.otp.data)
        return render_template("security_codes.html", codes=codes, enrolled=True)
    return _run(ConfirmTotpForm, "confirm_form", action)


@bp.post(PAGE + "/recovery-codes")
def regenerate_recovery_codes():
    def action(person, form):
        return render_template("security_codes.html", codes=totp.regenerate_recovery_codes(person, form.otp.data),
                               enrolled=False)
    return _run(RegenerateRecoveryForm, "regenerate_form", action)


@bp.post(PAGE + "/totp/disable")
def disable():
    def action(person, form):
        totp.disable(person, form.password.data, form.otp.data)
        flash(_("Two-step verification is off."), "notice")
        return redirect(PAGE, code=303)
    return _run(DisableTotpForm, "disable_form", action)
