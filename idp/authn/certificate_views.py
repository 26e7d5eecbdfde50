"""``/login/certificate``: certificate login (level 3) through the TLS proxy; see ``certificate``."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_babel import lazy_gettext as _l

from ..sessions.current import current_session
from .certificate import NO_CERTIFICATE, login_with_certificate, presented
from .views import _signed_in, safe_next

bp = Blueprint("certificate_login", __name__)

NO_CERTIFICATE_MESSAGE = _l("Your browser did not present a certificate. Insert your card or install your certificate, "
                    "then try again; open this page over the hub's secure address.")


@bp.get("/login/certificate")
def login_certificate():
    next_url = safe_next(request.args.get("next"))
    check, s, cookie = login_with_certificate(presented(), current_session())
    if s is not None:
        return _signed_in(s, cookie, next_url)
    message = NO_CERTIFICATE_MESSAGE if check.reason == NO_CERTIFICATE else check.message
    return render_template("login_certificate.html", message=message, reason=check.reason, next=next_url), 403
