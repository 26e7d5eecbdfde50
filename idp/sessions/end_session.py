"""RP-Initiated Logout 1.0 §2-§3: deciding what a logout request means, apart from HTTP."""
from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from flask_babel import gettext as _, lazy_gettext as _l

from ..errors import DomainError
from ..keystore.jwt import verify_own_jwt
from ..oauth.claims import is_subject_of
from ..oauth.clients import get_client
from .models import SsoSession


@dataclass
class LogoutRequest:
    client: object | None = None
    redirect_uri: str | None = None  # only when registered for that client (exact match)
    state: str | None = None
    hint_claims: dict | None = None
    hint_problem: str | None = None
    notes: list[str] = field(default_factory=list)

    def matches(self, session: SsoSession | None) -> bool:
        """The hint ties the request to this session: same sid, or (no sid) same subject."""
        if session is None or not self.hint_claims:
            return False
        if "sid" in self.hint_claims:
            return self.hint_claims["sid"] == session.sid
        # The hint carries the subject its client saw: pairwise for pairwise clients (OIDC Core §8.1).
        sub = self.hint_claims.get("sub")
        if self.client is None:
            return isinstance(sub, str) and hmac.compare_digest(sub.encode(), session.person.sub.encode())
        return is_subject_of(session.person, self.client, sub)


def parse_logout_request(params) -> LogoutRequest:
    for name in ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales", "logout_hint"):
        if len(params.getlist(name)) > 1:
            raise DomainError(_l("The sign-out request repeats a parameter."), code="invalid_request")
    req = LogoutRequest(state=params.get("state") if len(params.get("state") or "") <= 1024 else None)
    hint = params.get("id_token_hint")
    if hint:
        # §2: expired ID tokens are acceptable hints; the signature and issuer must be ours.
        claims = verify_own_jwt(hint)
        if claims is None or "sub" not in claims:
            req.hint_problem = _("The sign-out request came with an ID token that this service did not issue.")
        else:
            req.hint_claims = claims
    client_id = params.get("client_id")
    hint_aud = None
    if req.hint_claims:
        aud = req.hint_claims.get("aud")
        hint_aud = aud if isinstance(aud, str) else (aud[0] if isinstance(aud, list) and len(aud) == 1 else None)
    if client_id and hint_aud and client_id != hint_aud:
        raise DomainError(_l("The client_id of the sign-out request does not match its id_token_hint."),
                          code="invalid_request")
    req.client = get_client(client_id or hint_aud)
    uri = params.get("post_logout_redirect_uri")
    if uri:
        if req.client is not None and uri in (req.client.post_logout_redirect_uris or []):
            req.redirect_uri = uri
        else:
            req.notes.append(_("The site did not register the address to return to, so you stay on this page."))
    return req
