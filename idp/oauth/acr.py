"""The assurance an authorization request needs, and what happens when the session is below it.

The level required is the highest of:

(a) ``acr_values`` (OIDC Core §3.1.2.1): a list in order of preference, and a higher level satisfies a
    lower one, so the lowest listed level we know; unknown values are ignored (a voluntary request);
(b) ``acr`` requested as an Essential Claim of the ID token in ``claims`` (§5.5.1.1): likewise the lowest
    requested value we know; if none of them is ours the request cannot be met;
(c) policy: scopes that release sensitive personal information are released only at level 2
    (``id_card``, PIPL). This one is *wanted*, not required: a session below is stepped up when the
    person can be (TOTP and a verified real name); otherwise the authorization goes on and those claims
    are withheld (the consent page says so, and ``claims`` enforces the level again at release).

A session below the required level is stepped up (a page asking for a TOTP code), or the request ends with
``unmet_authentication_requirements`` (OpenID Connect Core Unmet Authentication Requirements 1.0), or
``interaction_required`` under ``prompt=none``: never silently accepted. The ID token then carries the
session's real ``acr`` (``tokens``/``grants`` copy it from the session).
"""
from __future__ import annotations

from dataclasses import dataclass

from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oidc.core.errors import InteractionRequiredError
from flask import Response, current_app, render_template

from ..authn.assurance import HIGHEST_LEVEL, missing_for, session_level
from ..authn.forms import SecondFactorForm
from ..authn.totp import has_totp
from ..config import level_for_acr
from . import claims_request as claims_param

SCOPE_LEVELS = {"id_card": 2}


class UnmetAuthenticationRequirementsError(OAuth2Error):
    """OpenID Connect Core Unmet Authentication Requirements 1.0 §2: the Authorization Server is unable
    to meet the requirements of the Relying Party for the authentication of the End-User."""

    error = "unmet_authentication_requirements"


@dataclass
class Requirement:
    level: int  # required: below it, step up or fail
    claims_request: dict | None
    wanted: int = 1  # for sensitive scopes: stepped up to when the person can be, else those claims withheld


def requirement_of(params, client) -> Requirement:
    """Raises ``invalid_request`` (malformed ``claims``) or ``unmet_authentication_requirements`` (a
    level no sign-in here reaches, or essential acr values none of which is ours)."""
    cfg = current_app.config
    parsed = claims_param.parse(params.get("claims"))
    levels = [1]
    voluntary = [lvl for v in (params.get("acr_values") or "").split() if (lvl := level_for_acr(cfg, v))]
    if voluntary:
        levels.append(min(voluntary))
    essential, values = claims_param.requested_values(parsed, "id_token", "acr")
    if essential and values is not None:
        known = [lvl for v in values if isinstance(v, str) and (lvl := level_for_acr(cfg, v))]
        if not known:
            raise UnmetAuthenticationRequirementsError("None of the essential 'acr' values is supported.")
        levels.append(min(known))
    level = max(levels)
    if level > HIGHEST_LEVEL:
        raise UnmetAuthenticationRequirementsError("The requested assurance level is not available.")
    scopes = client.get_allowed_scope(params.get("scope") or "").split()
    wanted = max([level] + [SCOPE_LEVELS[s] for s in scopes if s in SCOPE_LEVELS])
    return Requirement(level=level, claims_request=parsed, wanted=wanted)


def enforce(requirement: Requirement, principal, client, prompts: set[str], fail, self_url) -> Response | None:
    """None when the session is enough; else the step-up page, the page saying what is missing (with
    a way back to the subsite carrying the error), or ``interaction_required`` under prompt=none.
    ``self_url()``: this authorization request's own path, for coming back after the step-up."""
    current, person = session_level(principal.acr), principal.person
    if current >= requirement.level:
        if current >= requirement.wanted or "none" in prompts or missing_for(person, has_totp(person), requirement.wanted):
            return None  # sensitive claims are withheld at this level
        form = SecondFactorForm(formdata=None, next=self_url())
        return Response(render_template("step_up.html", client=client, person=person, level=requirement.wanted,
                                        form=form, missing=[], back=fail(UnmetAuthenticationRequirementsError(
                                            "The person did not reach the requested assurance level.")).location))
    if "none" in prompts:
        return fail(InteractionRequiredError())
    missing = missing_for(person, has_totp(person), requirement.level)
    unmet = UnmetAuthenticationRequirementsError("The person did not reach the requested assurance level.")
    back = fail(unmet).location
    here = self_url()
    form = None if missing else SecondFactorForm(formdata=None, next=here)
    html = render_template("step_up.html", client=client, person=person, level=requirement.level, form=form,
                           missing=missing, back=back, here=here)
    # Certificate login is a way forward (200); anything else missing is not reachable now (403).
    return Response(html, status=403 if set(missing) - {"certificate"} else 200)
