"""Sign-in and second-factor forms (Flask-WTF: every form carries a CSRF token).

Field names are contracts: ``username`` and ``password`` for the login, ``otp`` for a second factor.
"""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


def _otp_field(label=None):
    return StringField(label or _l("6-digit code from your authenticator app, or a recovery code"),
                       validators=[DataRequired(), Length(max=32)])


class LoginForm(FlaskForm):
    username = StringField(_l("Username, mobile phone or ID number"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])
    next = HiddenField()


class SecondFactorForm(FlaskForm):
    """The second step of a login, and the step-up of a session (``next``: where to return)."""

    otp = _otp_field()
    next = HiddenField()


class PasswordConfirmForm(FlaskForm):
    """Re-authentication before an authenticator app is bound to the account."""

    password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=256)])


class ConfirmTotpForm(FlaskForm):
    otp = _otp_field(_l("6-digit code shown by the app"))


class RegenerateRecoveryForm(FlaskForm):
    otp = _otp_field()


class DisableTotpForm(FlaskForm):
    password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=256)])
    otp = _otp_field()
