"""Logout (RP-Initiated Logout 1.0) and the citizen's own sessions page."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, make_response, redirect, render_template, request
from flask_babel import lazy_gettext as _l

from ..authn.views import login_redirect
from ..errors import DomainError, require_csrf_token
from .current import clear_session_cookie, current_session
from .end_session import parse_logout_request
from .logout import clients_of, end_sessions, live_sessions_of

bp = Blueprint("sessions", __name__)


def _with_state(uri: str, state: str | None) -> str:
    if not state:
        return uri
    return uri + ("&" if "?" in uri else "?") + urlencode({"state": state})


def signed_out(front_channel: list[str], redirect_uri: str | None, state: str | None, notes: list[str]) -> Response:
    """The signed-out page (the front-channel logout iframes, ``notes``) or the redirect, without the cookie."""
    target = _with_state(redirect_uri, state) if redirect_uri else None
    if target and not front_channel:
        resp = make_response(redirect(target, code=303))
    else:
        resp = make_response(render_template("logged_out.html", front_channel=front_channel, target=target, notes=notes))
        if front_channel:
            origins = " ".join(sorted({u.split("/", 3)[0] + "//" + u.split("/", 3)[2] for u in front_channel}))
            resp.headers["Content-Security-Policy"] = (f"default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                                       f"frame-src {origins}; frame-ancestors 'none'")
    clear_session_cookie(resp)
    return resp


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """OIDC RP-Initiated Logout 1.0 end_session_endpoint."""
    req = parse_logout_request(request.values)
    session = current_session()
    confirmed = False
    if request.method == "POST" and request.form.get("decision") == "logout":
        require_csrf_token(request.form.get("csrf_token"), _l("The page has expired. Go back, reload the page and try again."))
        confirmed = True
    if session is None:
        return signed_out([], req.redirect_uri, req.state, req.notes)  # nothing to end: already signed out
    if not (confirmed or req.matches(session)):
        # §2: a request we cannot tie to this session might be forged; ask the person (logout CSRF).
        return render_template("logout_confirm.html", req=req, person=session.person, problem=req.hint_problem)
    actor = f"client:{req.client.client_id}" if req.client and not confirmed else f"person:{session.person.sub}"
    front = end_sessions([session], reason="rp_logout" if not confirmed else "user_logout", actor=actor)
    return signed_out(front, req.redirect_uri, req.state, req.notes)


@bp.get("/account/sessions")
def my_sessions():
    s = current_session()
    if s is None:
        return login_redirect("/account/sessions")
    sessions = live_sessions_of(s.person_id)
    rows = [{"s": x, "clients": [c.name for c in clients_of(x)], "current": x.id == s.id} for x in sessions]
    return render_template("sessions.html", person=s.person, rows=rows)


@bp.post("/account/sessions/end")
def end_my_sessions():
    """End one session (by sid) or all of them ("sign out everywhere"); same fan-out as any logout."""
    s = current_session()
    if s is None:
        return login_redirect("/account/sessions")
    which = request.form.get("sid", "")
    mine = live_sessions_of(s.person_id)
    targets = mine if which == "all" else [x for x in mine if x.sid == which]
    if not targets:
        raise DomainError(_l("This session has already ended or does not exist."), code="not_found", status=404)
    front = end_sessions(targets, reason="user_sessions_page", actor=f"person:{s.person.sub}")
    if any(x.id == s.id for x in targets):
        return signed_out(front, None, None, [])
    resp = make_response(redirect("/account/sessions", code=303))
    return resp
