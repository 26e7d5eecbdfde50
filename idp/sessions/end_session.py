"""RP-Initiated Logout 1.0 §2-§3: deciding what a logout request means, apart from HTTP."""
from __future__ import annotations

import hmac
from dataclasses import dataclass, field

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
            raise DomainError("重复的参数 / A logout parameter is repeated.", code="invalid_request")
    req = LogoutRequest(state=params.get("state") if len(params.get("state") or "") <= 1024 else None)
    hint = params.get("id_token_hint")
    if hint:
        # §2: expired ID tokens are acceptable hints; the signature and issuer must be ours.
        claims = verify_own_jwt(hint)
        if claims is None or "sub" not in claims:
            req.hint_problem = "the id_token_hint is not an ID token issued by this provider"
        else:
            req.hint_claims = claims
    client_id = params.get("client_id")
    hint_aud = None
    if req.hint_claims:
        aud = req.hint_claims.get("aud")
        hint_aud = aud if isinstance(aud, str) else (aud[0] if isinstance(aud, list) and len(aud) == 1 else None)
    if client_id and hint_aud and client_id != hint_aud:
        raise DomainError("client_id 与 id_token_hint 不一致 / client_id does not match the id_token_hint.",
                          code="invalid_request")
    req.client = get_client(client_id or hint_aud)
    uri = params.get("post_logout_redirect_uri")
    if uri:
        if req.client is not None and uri in (req.client.post_logout_redirect_uris or []):
            req.redirect_uri = uri
        else:
            req.notes.append("the post_logout_redirect_uri is not registered, so you stay on this page")
    return req
