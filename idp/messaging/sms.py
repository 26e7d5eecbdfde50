"""The SMS provider interface: a deployment plugs in its gateway (a carrier's or a cloud SMS API) as a
class named by ``IDP_SMS_BACKEND=package.module:ClassName``.

The class is built once per process with one argument, the JSON object of ``IDP_SMS_OPTIONS`` as a
dict (account, key, endpoint, template or signature names — whatever the gateway needs), and must
provide ``send_sms(to, body)``:

- ``to``: a mainland mobile number, 11 digits starting with 1 (no country code);
- ``body``: the whole text, already in the person's language, starting with the signature
  (【本溪政务网】) that Chinese gateways require;
- return when the gateway accepted the message; raise any exception when it did not (the hub logs
  the exception's type only, never the number or the text, and the person can ask for a new code).

It may be called from several threads at once. It must not log the number or the text.
"""
from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

from ..config import ConfigError


@runtime_checkable
class SmsProvider(Protocol):
    def send_sms(self, to: str, body: str) -> None:
        """Hand one text message to the gateway; raise if it was not accepted."""


def load_provider(path: str, options: dict) -> SmsProvider:
    """Import ``package.module:Class`` (or ``package.module.Class``) and build it with ``options``."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"IDP_SMS_BACKEND: cannot load {path!r} ({type(exc).__name__}: {exc})") from exc
    provider = cls(options)
    if not isinstance(provider, SmsProvider):
        raise ConfigError(f"IDP_SMS_BACKEND: {path!r} has no send_sms(to, body) method")
    return provider
