"""Certificate login behind the TLS proxy (level 3): read what nginx forwarded, trust it only from
``IDP_TRUSTED_PROXIES``, validate the certificate here whatever nginx said, then start or raise the
SSO session.

nginx (``deploy/nginx/``) forwards ``$ssl_client_escaped_cert`` (the URL-escaped PEM) in
``X-SSL-Client-Cert`` and ``$ssl_client_verify`` (``SUCCESS``/``FAILED:…``/``NONE``) in
``X-SSL-Client-Verify``. The hub never relies on ``X-SSL-Client-Verify``: the chain, validity,
purpose, revocation (the hub's own records) and the mapping to an official are checked by
``idp.pki.validation.validate_certificate``; nginx's verdict is only logged.

AMR (RFC 8176 §2): the key of a browser certificate lives where the browser or the operating system
keeps it; the server cannot tell a software key store from a smart card (a TLS handshake proves
possession, not where the key is). So the method is ``swk`` (proof of possession of a software-secured
key), the conservative value; ``hwk`` would need attestation. Added to a session that already used a
password, the amr becomes ``pwd swk mfa``.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from urllib.parse import unquote

from flask import current_app, request

from ..audit.service import record
from ..config import trusted_proxy_networks
from ..db import transaction
from ..ops.metrics import record_login
from ..pki.validation import CertificateCheck, validate_certificate
from ..sessions.models import SsoSession
from ..sessions.service import raise_session, start_session
from .assurance import assess

log = logging.getLogger(__name__)

CERT_HEADER = "X-SSL-Client-Cert"
VERIFY_HEADER = "X-SSL-Client-Verify"
METHOD = "swk"  # RFC 8176 §2; see the module docstring
NO_CERTIFICATE = "no_certificate"  # a reason of ours, besides validate_certificate's
MAX_HEADER = 16384  # an escaped PEM chain of a few certificates; anything longer is not ours


@dataclass(frozen=True)
class Presented:
    """What reached the hub: the escaped PEM (None when nothing trustworthy was forwarded)."""

    escaped_pem: str | None
    proxy_verdict: str | None
    spoofed: bool = False


def peer_address() -> str:
    """The address of the TCP peer (the proxy, when there is one), not the forwarded client address."""
    return request.environ.get("idp.peer_addr") or request.environ.get("REMOTE_ADDR", "")


def _from_trusted_proxy(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in trusted_proxy_networks(current_app.config))


def presented() -> Presented:
    """The forwarded certificate, if it came from a trusted proxy; a header from anyone else is
    ignored and audited (``login.certificate_header_spoofed``)."""
    cert, verdict = request.headers.get(CERT_HEADER), request.headers.get(VERIFY_HEADER)
    if not _from_trusted_proxy(peer_address()):
        if cert is not None or verdict is not None:
            with transaction():
                record("login.certificate_header_spoofed", actor="anonymous", outcome="failure",
                       detail={"method": METHOD})
            return Presented(None, None, spoofed=True)
        return Presented(None, None)
    cert = (cert or "").strip()
    return Presented(cert or None, verdict)


def parse(escaped_pem: str):
    """The certificate in nginx's ``$ssl_client_escaped_cert``: bytes for ``validate_certificate``."""
    if len(escaped_pem) > MAX_HEADER:
        return b""
    return unquote(escaped_pem).encode("utf-8", "replace")


def refuse(reason: str) -> None:
    """Audit a refused certificate login (the reason word only: no subject, no serial)."""
    with transaction():
        record("login.failed", actor="anonymous", outcome="failure", detail={"method": METHOD, "reason": reason})
    record_login("certificate", "failure")


def login_with_certificate(p: Presented, previous: SsoSession | None):
    """(CertificateCheck, session, cookie); session and cookie are None when refused (audited).

    The same person's live session is raised to level 3 (same ``sid``); anyone else's is replaced."""
    if not p.escaped_pem:
        refuse(NO_CERTIFICATE)
        return CertificateCheck(False, NO_CERTIFICATE), None, None  # its message is the view's
    check = validate_certificate(parse(p.escaped_pem))
    if not check.valid:
        log.info("certificate login refused: %s (%s); proxy said %s", check.reason, check.detail,
                 (p.proxy_verdict or "")[:80])
        refuse(check.reason)
        return check, None, None
    person = check.person
    record_login("certificate", "success")
    if previous is not None and previous.person_id == person.id:
        # One transaction, as for a new session: the login is never recorded without the step-up.
        a = assess(person, [*(previous.amr or []), METHOD])
        return check, previous, raise_session(previous, acr=a.acr, amr=a.amr, login={"method": METHOD},
                                              certificate_fingerprint=check.record.fingerprint)
    a = assess(person, [METHOD])
    s, cookie = start_session(person, acr=a.acr, amr=a.amr, replaces=previous, login={"method": METHOD},
                              certificate_fingerprint=check.record.fingerprint)
    return check, s, cookie
