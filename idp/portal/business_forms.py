"""Forms of the businesses page (labels are translated; every form carries a CSRF token)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, RadioField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional


class RegisterBusinessForm(FlaskForm):
    uscc = StringField(_l("Unified social credit code (18 characters)"), validators=[DataRequired(), Length(max=40)])
    name = StringField(_l("Registered name of the business"), validators=[DataRequired(), Length(max=200)])


class AuthorizeAgentForm(FlaskForm):
    business = SelectField(_l("Business"), validators=[DataRequired()])
    username = StringField(_l("Username of the agent's account"), validators=[DataRequired(), Length(max=64)])
    valid_from = DateField(_l("Valid from (first day)"), validators=[Optional()])
    valid_until = DateField(_l("Valid until (last day; empty: until revoked)"), validators=[Optional()])


class ActAsForm(FlaskForm):
    act_as = RadioField(_l("I act"), validators=[DataRequired()], validate_choice=False)
    next = HiddenField()


class ActionForm(FlaskForm):
    """Confirm, decline or revoke: nothing but the CSRF token and the button."""
