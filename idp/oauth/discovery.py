"""Provider metadata (OIDC Discovery 1.0 §3, RFC 8414 §2): what is implemented, and nothing else."""
from __future__ import annotations

import json

from flask import current_app

from .claims import CLAIMS
from .clients import AUTH_METHODS, GRANT_TYPES, ID_TOKEN_ALGS, SCOPES, SUBJECT_TYPES
from .dpop import ALGS as DPOP_ALGS


def metadata() -> dict:
    cfg = current_app.config
    iss = cfg["ISSUER"]
    return {
        "issuer": iss,
        "authorization_endpoint": f"{iss}/authorize",
        "token_endpoint": f"{iss}/token",
        "userinfo_endpoint": f"{iss}/userinfo",
        "jwks_uri": f"{iss}/jwks.json",
        "revocation_endpoint": f"{iss}/revoke",
        "introspection_endpoint": f"{iss}/introspect",
        "end_session_endpoint": f"{iss}/logout",
        "pushed_authorization_request_endpoint": f"{iss}/par",  # RFC 9126 §5
        "require_pushed_authorization_requests": False,  # per client: require_pushed_authorization_requests
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "dpop_signing_alg_values_supported": list(DPOP_ALGS),  # RFC 9449 §5.1
        "subject_types_supported": list(SUBJECT_TYPES),
        "id_token_signing_alg_values_supported": list(ID_TOKEN_ALGS),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256", "PS256"],
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint_auth_methods_supported": [m for m in AUTH_METHODS if m != "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
                             "at_hash", *(c.name for c in CLAIMS)],
        "acr_values_supported": str(cfg["ACR_VALUES"]).split(),
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
    }


def metadata_json() -> bytes:
    ext = current_app.extensions
    if "idp.discovery" not in ext:
        ext["idp.discovery"] = json.dumps(metadata(), ensure_ascii=False).encode()
    return ext["idp.discovery"]
