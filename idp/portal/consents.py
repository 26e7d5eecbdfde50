"""``/account/consents``: the subsites a person allowed, what each may receive, and withdrawal."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import HiddenField
from wtforms.validators import DataRequired, Length

from ..authn.views import login_redirect
from ..errors import DomainError
from ..oauth import consent
from ..sessions.current import current_session

bp = Blueprint("consents", __name__)


class WithdrawForm(FlaskForm):
    client_id = HiddenField(validators=[DataRequired(), Length(max=64)])


@bp.get("/account/consents")
def my_consents():
    s = current_session()
    if s is None:
        return login_redirect("/account/consents")
    return render_template("account_consents.html", person=s.person, consents=consent.list_consents(s.person),
                           form=WithdrawForm())


@bp.post("/account/consents/withdraw")
def withdraw():
    s = current_session()
    if s is None:
        return login_redirect("/account/consents")
    form = WithdrawForm()
    if not form.validate_on_submit():
        raise DomainError(_("The page expired; please try again."), detail=str(form.errors))
    consent.withdraw(s.person, form.client_id.data)
    flash(_("Consent withdrawn. The site can no longer use what it received through you; it will ask again next time."))
    return redirect("/account/consents", code=303)
