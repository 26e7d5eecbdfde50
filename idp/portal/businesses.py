"""``/account/businesses``: my businesses and roles, registering a business, authorizing and revoking
agents, confirming authorizations, and ``/account/act-as`` (whom this session acts for)."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, get_flashed_messages, redirect, render_template, session
from flask_babel import gettext as _

from ..accounts import representation as reps
from ..accounts.businesses import VERIFIED_LEVEL, get_business, register_business
from ..authn.views import login_redirect, safe_next
from ..errors import DomainError
from ..sessions.current import current_session
from .business_forms import ActAsForm, ActionForm, AuthorizeAgentForm, RegisterBusinessForm

bp = Blueprint("businesses", __name__)
PAGE = "/account/businesses"
MYSELF = "self"
_CHOSEN = "acting_chosen_sid"  # the UI session remembers that this SSO session's person chose


# --- the choice of this SSO session (also used by /authorize) ----------------------------------------

def switch(sso, choice: str | None) -> None:
    """Act for the business with public id ``choice``, or for oneself (None or ``self``)."""
    reps.act_as(sso, None if choice in (None, "", MYSELF) else choice)
    session[_CHOSEN] = sso.sid


def chose_myself(sso) -> bool:
    """True once the person said, in this SSO session, that they act for themself."""
    return session.get(_CHOSEN) == sso.sid and sso.acting_representation_id is None


def act_as_choices(person) -> list[tuple[str, str]]:
    options = [(MYSELF, _("Myself (%(name)s)", name=person.name or person.username))]
    for rep, business in reps.usable_representations(person):
        role = _("legal representative") if rep.role == reps.LEGAL_REPRESENTATIVE else _("agent")
        options.append((business.public_id, _("%(business)s, as %(role)s", business=business.name, role=role)))
    return options


# --- pages ----------------------------------------------------------------------------------------------

def _page(sso, *, status: int = 200, error: str | None = None, register=None, agent=None):
    person = sso.person
    mine = [(r, b) for r, b in reps.usable_representations(person) if r.role == reps.LEGAL_REPRESENTATIVE]
    register = register or RegisterBusinessForm(formdata=None)
    agent = agent or AuthorizeAgentForm(formdata=None)
    agent.business.choices = [(b.public_id, b.name) for _r, b in mine]
    acting = reps.acting_representation(sso)
    act = ActAsForm(formdata=None, act_as=acting[1].public_id if acting else MYSELF, next=PAGE)
    act.act_as.choices = act_as_choices(person)

    def row(rep, **extra):
        return {"rep": rep, "state": reps.state(rep), "from": reps.first_day(rep.valid_from),
                "until": reps.last_day(rep.valid_until), **extra}

    return render_template(
        "businesses.html", person=person, error=error, notices=get_flashed_messages(),
        verified=(person.level or 1) >= VERIFIED_LEVEL, acting=acting, act_form=act,
        register_form=register, agent_form=agent, action_form=ActionForm(formdata=None),
        mine=[{"business": b, "agents": [row(r, person=p) for r, p in reps.agents_of(b)]} for _r, b in mine],
        agent_roles=[row(r, business=b) for r, b in reps.represented_by(person) if r.role == reps.AGENT],
        pending=[row(r, business=b) for r, b in reps.pending_for(person)],
    ), status


@bp.get(PAGE)
def businesses_page():
    sso = current_session()
    if sso is None:
        return login_redirect(PAGE)
    return _page(sso)


@bp.post(PAGE)
def register():
    sso = current_session()
    if sso is None:
        return login_redirect(PAGE)
    form = RegisterBusinessForm()
    if not form.validate_on_submit():
        return _page(sso, status=400, error=_("Please correct the marked fields."), register=form)
    try:
        business = register_business(representative=sso.person, uscc=form.uscc.data, name=form.name.data)
    except DomainError as exc:
        return _page(sso, status=exc.status, error=exc.message, register=form)
    flash(_("%(name)s is registered; you are its legal representative.", name=business.name))
    return redirect(PAGE, code=303)


def _start(day: date | None):
    return reps.start_of_day(day) if day else None


@bp.post(PAGE + "/agents")
def authorize_agent():
    sso = current_session()
    if sso is None:
        return login_redirect(PAGE)
    form = AuthorizeAgentForm()
    form.business.choices = [(b.public_id, b.name) for r, b in reps.usable_representations(sso.person)
                             if r.role == reps.LEGAL_REPRESENTATIVE]
    if not form.validate_on_submit():
        return _page(sso, status=400, error=_("Please correct the marked fields."), agent=form)
    try:
        reps.authorize_agent(business=get_business(form.business.data), username=form.username.data.strip(),
                             valid_from=_start(form.valid_from.data),
                             valid_until=reps.end_of_day(form.valid_until.data) if form.valid_until.data else None,
                             by=sso.person)
    except DomainError as exc:
        return _page(sso, status=exc.status, error=exc.message, agent=form)
    flash(_("The authorization is waiting for %(username)s to confirm it on their account page.",
            username=form.username.data.strip()))
    return redirect(PAGE, code=303)


_ACTIONS = {"confirm": reps.confirm, "decline": reps.decline, "revoke": reps.revoke}


def _done(action: str) -> str:
    return {"confirm": _("You now act as an agent of the business."),
            "decline": _("You declined the authorization."),
            "revoke": _("The authorization is revoked.")}[action]


@bp.post(PAGE + "/representations/<int:rep_id>/<action>")
def representation_action(rep_id: int, action: str):
    sso = current_session()
    if sso is None:
        return login_redirect(PAGE)
    if action not in _ACTIONS:
        raise DomainError(_("no such action"), code="not_found", status=404)
    form = ActionForm()
    if not form.validate_on_submit():
        return _page(sso, status=400, error=_("The page expired; please try again."))
    try:
        _ACTIONS[action](rep_id, sso.person)
    except DomainError as exc:
        return _page(sso, status=exc.status, error=exc.message)
    flash(_done(action))
    return redirect(PAGE, code=303)


@bp.post("/account/act-as")
def act_as():
    """Choose whom this session acts for; new authorizations at subsites carry the choice."""
    sso = current_session()
    if sso is None:
        return login_redirect(PAGE)
    form = ActAsForm()
    if not form.validate_on_submit():
        return _page(sso, status=400, error=_("Please choose whom you act for."))
    try:
        switch(sso, form.act_as.data)
    except DomainError as exc:
        return _page(sso, status=exc.status, error=exc.message)
    acting = reps.acting_representation(sso)
    flash(_("You now act for %(who)s.", who=acting[1].name) if acting else _("You now act for yourself."))
    return redirect(safe_next(form.next.data or PAGE), code=303)
