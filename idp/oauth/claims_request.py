"""The ``claims`` request parameter (OIDC Core §5.5), parsed and validated once at /authorize.

The parsed request is kept with the principal, then the code and the tokens (``claims_request``), for
the claim release (``claims.py``) and the acr check (``acr.py``). Only what §5.5 defines is kept: the
``userinfo`` and ``id_token`` members, and for each claim ``null`` or ``essential``/``value``/``values``
("Any members used that are not understood MUST be ignored").
"""
from __future__ import annotations

import json

from authlib.oauth2.rfc6749.errors import InvalidRequestError

MAX_LENGTH = 4096
MEMBERS = ("userinfo", "id_token")
SPEC_KEYS = ("essential", "value", "values")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse(raw: str | None) -> dict | None:
    """The parsed ``claims`` request, or None when absent; malformed → ``invalid_request``."""
    if raw is None or raw == "":  # RFC 6749 §3.1: a parameter without a value is treated as omitted
        return None
    if len(raw) > MAX_LENGTH:
        raise InvalidRequestError("'claims' is too long.")
    try:
        doc = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidRequestError("'claims' must be a JSON object (OIDC Core section 5.5).") from None
    if not isinstance(doc, dict):
        raise InvalidRequestError("'claims' must be a JSON object (OIDC Core section 5.5).")
    parsed: dict = {}
    for member in MEMBERS:
        if member not in doc:
            continue
        requested = doc[member]
        if not isinstance(requested, dict):
            raise InvalidRequestError(f"'claims.{member}' must be a JSON object (OIDC Core section 5.5).")
        parsed[member] = {name: _claim(member, name, spec) for name, spec in requested.items()}
    return parsed


def _claim(member: str, name: str, spec) -> dict | None:
    """§5.5.1: null (default manner) or an object with ``essential`` (boolean), ``value``, ``values`` (array)."""
    if spec is None:
        return None
    where = f"Each claim in 'claims.{member}'"  # the claim's name is not echoed (RFC 6749 §5.2 charset)
    if not isinstance(spec, dict):
        raise InvalidRequestError(f"{where} must be null or a JSON object (OIDC Core section 5.5.1).")
    if "essential" in spec and not isinstance(spec["essential"], bool):
        raise InvalidRequestError(f"{where}: 'essential' must be true or false (OIDC Core section 5.5.1).")
    if "values" in spec and not isinstance(spec["values"], list):
        raise InvalidRequestError(f"{where}: 'values' must be an array (OIDC Core section 5.5.1).")
    return {k: spec[k] for k in SPEC_KEYS if k in spec}


def requested_values(claims_request: dict | None, member: str, name: str) -> tuple[bool, list | None]:
    """(essential, acceptable values or None for any) of one claim in one member of a parsed request."""
    spec = ((claims_request or {}).get(member) or {}).get(name)
    if not spec:
        return False, None
    values = spec["values"] if "values" in spec else ([spec["value"]] if "value" in spec else None)
    return bool(spec.get("essential")), values
