"""People's seal pages: the public verification page (no sign-in) and the officials' sealing page
(a fresh certificate sign-in in the browser; see ``apply``'s rule)."""
from __future__ import annotations

import io
import re

from flask import Blueprint, current_app, jsonify, render_template, request, send_file
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DecimalField, IntegerField, SelectField
from wtforms.validators import NumberRange, Optional

from ..authn.views import login_redirect
from ..errors import DomainError
from ..limits import body_limit
from ..portal.forms import show_error
from ..sessions.current import current_session
from . import apply as applying
from .report import INDETERMINATE, INVALID, VALID

bp = Blueprint("seal_pages", __name__)


class VerifyForm(FlaskForm):
    document = FileField(_l("Document (a sealed PDF, or any signed file)"), validators=[FileRequired(_l("Choose a file."))])
    signature = FileField(_l("Detached signature (.p7s), for a file that is not a PDF"))


class ApplyForm(FlaskForm):
    seal = SelectField(_l("Seal"), coerce=int)
    document = FileField(_l("PDF document"), validators=[FileRequired(_l("Choose a PDF file."))])
    page = IntegerField(_l("Page (empty: the last page)"), validators=[Optional(), NumberRange(min=1)])
    x = DecimalField(_l("Stamp position from the left edge (points)"), validators=[Optional(), NumberRange(min=0)])
    y = DecimalField(_l("Stamp position from the bottom edge (points)"), validators=[Optional(), NumberRange(min=0)])


class PageForm(FlaskForm):
    """The placer's question: how big is the chosen page of this PDF (the sealing form's fields)."""
    document = FileField(_l("PDF document"), validators=[FileRequired(_l("Choose a PDF file."))])
    page = IntegerField(_l("Page (empty: the last page)"), validators=[Optional(), NumberRange(min=1)])


# "Valid seal", not "Valid": that msgid is another page's "validity period" (有效期) in Chinese.
VERDICT_TEXT = {VALID: _l("Valid seal"), INVALID: _l("Invalid"), INDETERMINATE: _l("Cannot be confirmed")}


@bp.route("/seals/verify", methods=["GET", "POST"])
@body_limit("SEAL_MAX_FILE_BYTES")
def verify():
    from .verification import verify as verify_file

    form = VerifyForm()
    report = None
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            sig = form.signature.data
            report = verify_file(form.document.data.read(), sig.read() if sig else None)
        else:
            status = 400
    return render_template("seals/verify.html", form=form, report=report, verdict_text=VERDICT_TEXT), status


@bp.post("/seals/apply/page")
@body_limit("SEAL_MAX_UPLOAD_BYTES")
def page_size():
    """The chosen page's size and rotation, and in ``geometry`` those of every page
    (``pdf.document_geometry``), for the click-to-place outline, as JSON; the page's script sends the
    sealing form here when the file changes, and switches pages from the answer."""
    from .pdf import document_geometry

    if current_session() is None:
        return jsonify({"error": "login_required", "error_description": _("Sign in first.")}), 401
    form = PageForm()
    if not form.validate_on_submit():
        return jsonify({"error": "invalid_request",
                        "error_description": " ".join(str(e) for errs in form.errors.values() for e in errs)}), 400
    try:
        return jsonify(document_geometry(form.document.data.read(), form.page.data))
    except DomainError as exc:
        return jsonify({"error": exc.code, "error_description": exc.message}), exc.status


def _download_name(filename: str | None) -> str:
    stem = re.sub(r"[^\w.-]+", "_", (filename or "document").rsplit("/", 1)[-1]).rsplit(".", 1)[0] or "document"
    return f"{stem[:80]}-sealed.pdf"


@bp.route("/seals/apply", methods=["GET", "POST"])
@body_limit("SEAL_MAX_UPLOAD_BYTES")
def apply_page():
    from . import service

    s = current_session()
    if s is None:
        return login_redirect("/seals/apply")
    person = s.person
    seals = service.seals_for(person)
    form = ApplyForm()
    form.seal.choices = [(seal.id, f"{seal.name}") for seal in seals]
    try:
        proof = applying.check_fresh_browser_login(person, s)
        fresh = True
    except DomainError:
        proof, fresh = None, False
    status = 200
    if request.method == "POST":
        if not fresh:
            form.form_errors.append(_("Sign in with your certificate again, then seal within %(minutes)d minutes.",
                                      minutes=max(1, current_app.config["SEAL_FRESH_LOGIN_SECONDS"] // 60)))
            status = 401
        elif form.validate_on_submit():
            try:
                done = applying.apply_pdf(person, form.seal.data, form.document.data.read(), proof=proof,
                                          page=form.page.data,
                                          x=float(form.x.data) if form.x.data is not None else None,
                                          y=float(form.y.data) if form.y.data is not None else None)
            except DomainError as exc:
                show_error(form, exc)
                status = exc.status
            else:
                # Flask writes a non-ASCII name (审批表.pdf) as filename*=UTF-8''… with an ASCII
                # fallback (RFC 6266 §4.3, RFC 8187); raw UTF-8 in a header makes the WSGI server fail.
                resp = send_file(io.BytesIO(done.output), mimetype="application/pdf", as_attachment=True,
                                 download_name=_download_name(form.document.data.filename), max_age=0)
                resp.headers["Seal-Application"] = str(done.application.id)
                return resp
        else:
            status = 400
    return render_template("seals/apply.html", form=form, seals=seals, fresh=fresh,
                           stamps=applying.stamp_boxes(seals) if fresh else {},
                           max_minutes=max(1, current_app.config["SEAL_FRESH_LOGIN_SECONDS"] // 60)), status
