"""The authorization step for scope ``org``: know whom the person acts for before issuing a code.

When a subsite asks for ``org`` and the person represents businesses but this SSO session has no
choice yet (or its choice was revoked or expired), the person picks one — or themself — on a page
that posts back into the same authorization request. ``prompt=none`` cannot show that page, so it
gets ``interaction_required`` (OIDC Core §3.1.2.6).
"""
from __future__ import annotations

from authlib.oidc.core.errors import InteractionRequiredError
from flask import Response, render_template, request
from flask_babel import gettext as _

from ..accounts.representation import acting_representation, usable_representations
from ..errors import require_csrf_token
from ..portal.businesses import MYSELF, act_as_choices, chose_myself, switch
from ..sessions.current import current_session

FIELD = "act_as"  # the chooser's form field (excluded from the authorization request's own parameters)


def choose(client, principal, scopes, prompts: set[str], *, action, fail) -> Response | None:
    """None to go on (``principal.representation_id`` set to a usable choice or None), else a response.
    ``action()``: where the chooser's form posts (this authorization request)."""
    sso = current_session()
    if request.method == "POST" and FIELD in request.form:
        require_csrf_token(request.form.get("csrf_token"), _("The page expired; start again from the subsite."))
        switch(sso, request.form.get(FIELD))
    current = acting_representation(sso)
    principal.representation_id = current[0].id if current else None
    if "org" not in scopes or current is not None or chose_myself(sso):
        return None
    if not usable_representations(principal.person):
        return None
    if "none" in prompts:
        return fail(InteractionRequiredError(description="Choose whom you act for (scope org) at the hub first."))
    choices = act_as_choices(principal.person)
    choices = [c for c in choices if c[0] != MYSELF] + [c for c in choices if c[0] == MYSELF]
    return Response(render_template("choose_acting.html", client=client, choices=choices, action=action(),
                                    person=principal.person))
