"""Forms of the citizen's pages (Flask-WTF: every form carries a CSRF token)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from ..accounts.passwords import MAX_LENGTH
from ..errors import DomainError

_required = DataRequired(message=_l("This field is required."))


def _password(label):
    return PasswordField(label, validators=[_required, Length(max=MAX_LENGTH)])


def _confirm(label):
    return PasswordField(label, validators=[_required, EqualTo("password", message=_l("The two passwords differ."))])


class CodeRequestForm(FlaskForm):
    destination = StringField(_l("Mobile phone number or email address"), validators=[_required, Length(max=254)])


class RegistrationForm(FlaskForm):
    code = StringField(_l("Verification code (6 digits)"), validators=[_required, Length(max=32)])
    username = StringField(_l("Username"), validators=[_required, Length(max=32)])
    password = _password(_l("Password"))
    password_confirm = _confirm(_l("Password again"))
    name = StringField(_l("Real name (as on your ID card)"), validators=[_required, Length(max=128)])
    id_number = StringField(_l("Resident ID number (18 characters)"), validators=[_required, Length(max=32)])


class ResetRequestForm(FlaskForm):
    login = StringField(_l("Username, mobile phone number or ID number"), validators=[_required, Length(max=64)])


class ResetForm(FlaskForm):
    code = StringField(_l("Verification code (6 digits)"), validators=[_required, Length(max=32)])
    password = _password(_l("New password"))
    password_confirm = _confirm(_l("New password again"))


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[_required, Length(max=MAX_LENGTH)])
    password = _password(_l("New password"))
    password_confirm = _confirm(_l("New password again"))


# CSRF: CSRFProtect (idp/__init__.py) refuses a POST without a valid token before any view runs.


class ButtonForm(FlaskForm):
    """A form that is only a button (and its CSRF token)."""


def show_error(form: FlaskForm, exc: DomainError, default_field: str | None = None) -> None:
    """Put a refusal beside the input it is about (``InvalidInput.field``), or above the form."""
    field = getattr(exc, "field", None) or default_field
    if field and field in form._fields:
        form._fields[field].errors = [*form._fields[field].errors, exc.message]
    else:
        form.form_errors.append(exc.message)


class ReauthenticationForm(FlaskForm):
    """Before a sensitive request (closing the account, a copy of its data): the current password, and
    the second factor when the account has one."""

    password = PasswordField(_l("Current password"), validators=[_required, Length(max=MAX_LENGTH)])
    otp = StringField(_l("6-digit code from your authenticator app, or a recovery code"), validators=[Length(max=32)])
