"""Certificate login from the officials' tool: the JWT bearer grant (RFC 7523 §2.1) with a DPoP-bound token.

The assertion is a JWS signed by the official's certified key, carrying the certificate chain in the
JOSE header ``x5c`` (RFC 7515 §4.1.6: standard base64 DER, the leaf first). Its claims (RFC 7523 §3):

``iss``  the ``client_id`` of the registered tool (e.g. ``sealctl``, a public client registered with
         this grant type): the software that made the request (§3 item 1)
``sub``  the certificate's SHA-256 thumbprint (``x5t#S256``, RFC 7515 §4.1.8) of the ``x5c`` leaf
         (§3 item 2): the principal is the certificate, and the hub maps it to its official; the
         tool needs to know no account name
``aud``  the token endpoint URL (§3 item 3)
``exp``  at most ``MAX_LIFETIME`` seconds after ``iat`` (both required; §3 items 4 and 6)
``jti``  single use (§3 item 7; remembered in ``UsedAssertion`` like ``private_key_jwt``)

The request must carry a DPoP proof (RFC 9449 §5) signed with the same certified key: the access
token is bound to it (``cnf.jkt``, §6.1), ``token_type`` ``DPoP``. The sign-in is level 3 (a
certified key), ``amr`` ``["swk"]`` (RFC 8176 §2: proof of possession of a software-secured key; a
PKCS#11 token would be ``hwk``, not distinguishable from the assertion alone). No refresh token is
issued (RFC 7523 §2.1 gives none): the tool signs in again with the key when the token expires.

Every refusal is audited (``official_login.refused``, reason in ``detail``) and answered with
``invalid_grant`` (RFC 7523 §3.1; ``invalid_dpop_proof`` for the proof, RFC 9449 §5) and a readable
description; success is ``official_login.succeeded``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from datetime import timedelta

from authlib.oauth2.rfc6749.errors import (InvalidClientError, InvalidGrantError, InvalidRequestError,
                                          UnauthorizedClientError)
from authlib.oauth2.rfc7523 import JWTBearerGrant
from cryptography import x509
from flask import current_app
from flask_babel import force_locale
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy.exc import IntegrityError

from ..audit.service import record
from ..config import acr_for_level
from ..db import db, utcnow
from ..ops.metrics import record_login
from ..pki.validation import validate_certificate
from . import dpop, tokens
from .clients import get_client
from .dpop import InvalidDPoPProofError
from .grants import TOKEN_AUTH_METHODS
from .models import UsedAssertion

GRANT_TYPE = JWTBearerGrant.GRANT_TYPE  # urn:ietf:params:oauth:grant-type:jwt-bearer
MAX_LIFETIME = 300  # seconds between iat and exp
LEEWAY = 30  # clock skew allowed, seconds
MAX_CHAIN = 5
AMR = ["swk"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64der(value: object) -> x509.Certificate:
    if not isinstance(value, str) or len(value) > 16384:
        raise ValueError("not a string")
    return x509.load_der_x509_certificate(base64.b64decode(value, validate=True))


class OfficialJWTBearerGrant(JWTBearerGrant):
    """RFC 7523 §2.1 for officials: the key is the certificate's (``x5c``), not one registered for the client."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS  # confidential clients only; a public one is named by iss

    def _refuse(self, reason: str, message: str, client_id: str | None = None, person=None, error=InvalidGrantError):
        """Audit the refusal (committed: the token endpoint rolls back failed requests) and answer it."""
        record("official_login.refused", actor=f"client:{client_id or 'unknown'}",
               target=f"person:{person.sub}" if person is not None else None, outcome="refused",
               detail={"reason": reason})
        db.session.commit()
        record_login("jwt-bearer", "failure")
        raise error(description=message)

    def extract_assertion(self, assertion: str):
        """Authlib's, with room for the certificate chain in the header (``dpop.registry``)."""
        try:
            obj = jws.extract_compact(assertion.encode(), registry=dpop.registry())
            claims = json.loads(obj.payload)
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidGrantError(description="Invalid JWT assertion.") from exc
        if not isinstance(claims, dict):
            raise InvalidGrantError(description="Invalid JWT payload.")
        return obj.headers(), claims

    def token_endpoint(self) -> str:
        return current_app.config["ISSUER"] + "/token"

    def get_audiences(self):
        return [self.token_endpoint()]

    def validate_token_request(self):
        assertion = self.request.form.get("assertion")
        if not assertion or not isinstance(assertion, str):
            raise InvalidRequestError("Missing 'assertion' in request.")
        headers, claims = self.extract_assertion(assertion)  # Authlib: JWS structure and JSON payload
        iss = claims.get("iss")
        client = get_client(iss) if isinstance(iss, str) else None
        if client is None:
            self._refuse("unknown_client", "The assertion's 'iss' is not a registered client.")
        cid = client.client_id
        if not client.check_grant_type(GRANT_TYPE):
            self._refuse("grant_not_allowed", f"The client may not use grant_type={GRANT_TYPE}.", cid,
                         error=UnauthorizedClientError)
        if not client.is_public:
            # A confidential client registered for the grant still authenticates itself (RFC 6749 §3.2.1).
            try:
                authed = self.authenticate_token_endpoint_client()
            except InvalidClientError:
                self._refuse("client_authentication", "The client must authenticate.", cid, error=InvalidClientError)
            if not hmac.compare_digest(authed.client_id, cid):
                self._refuse("client_mismatch", "The assertion's 'iss' is not the authenticated client.", cid)

        # The certificate chain (RFC 7515 §4.1.6) and the certificate itself (RFC 5280 §6, idp.pki).
        x5c = headers.get("x5c")
        if not isinstance(x5c, list) or not 1 <= len(x5c) <= MAX_CHAIN:
            self._refuse("missing_x5c", "The assertion must carry the certificate chain in its 'x5c' header.", cid)
        try:
            chain = [_b64der(c) for c in x5c]
        except (ValueError, TypeError, binascii.Error):
            self._refuse("bad_x5c", "The assertion's 'x5c' header does not hold certificates.", cid)
        check = validate_certificate(chain[0], chain[1:])
        if not check.valid:
            with force_locale("en"):  # error_description is ASCII (RFC 6749 §5.2)
                message = str(check.message)
            self._refuse(f"certificate_{check.reason}", message, cid)
        person, leaf_key = check.person, chain[0].public_key()

        # The signature, with the leaf's key (RFC 7523 §3 item 9).
        alg = headers.get("alg")
        if alg not in dpop.ALGS:
            self._refuse("bad_alg", "The assertion's 'alg' is not supported.", cid, person)
        try:
            key = (ECKey if hasattr(leaf_key, "curve") else RSAKey).import_key(leaf_key)
            jwt.decode(assertion, key, algorithms=[alg], registry=dpop.registry())
        except (JoseError, ValueError, TypeError):
            self._refuse("bad_signature", "The assertion's signature does not verify with the certificate's key.",
                         cid, person)
        self._check_claims(claims, cid, person, _b64url(hashlib.sha256(base64.b64decode(x5c[0])).digest()))

        # Sender constraint: a DPoP proof by the same key (RFC 9449 §5, §6).
        try:
            jkt = dpop.check_proof(self.request.headers, method="POST", url=self.token_endpoint())
        except dpop.DPoPError as exc:
            if not exc.audited:  # the nonce handed out first (RFC 9449 §8): a step, not a failed login
                raise exc.token_error(description=str(exc)) from exc
            self._refuse(f"dpop_{exc.reason}", str(exc), cid, person, error=exc.token_error)
        if not hmac.compare_digest(jkt, dpop.thumbprint(key)):
            self._refuse("dpop_key_mismatch", "The DPoP proof must be signed with the certified key.", cid, person,
                         error=InvalidDPoPProofError)
        self._remember(cid, claims["jti"], person)

        self.request.client = client
        self.validate_requested_scope()
        self.request.user = tokens.Principal(
            person=person, session_id=None, sid=None, auth_time=utcnow(),
            acr=acr_for_level(current_app.config, 3), amr=list(AMR), cnf_jkt=jkt)
        self.request.certificate_check = check

    def _check_claims(self, claims: dict, cid: str, person, x5t: str) -> None:
        """RFC 7523 §3 items 2-7, each with its own reason."""
        now = time.time()
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if self.token_endpoint() not in auds:
            self._refuse("wrong_aud", "The assertion's 'aud' must be the token endpoint.", cid, person)
        exp, iat = claims.get("exp"), claims.get("iat")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (exp, iat)):
            self._refuse("bad_claims", "The assertion needs numeric 'exp' and 'iat'.", cid, person)
        if exp <= now - LEEWAY:
            self._refuse("expired", "The assertion has expired.", cid, person)
        if iat > now + LEEWAY or "nbf" in claims and not (isinstance(claims["nbf"], int)
                                                          and claims["nbf"] <= now + LEEWAY):
            self._refuse("not_yet_valid", "The assertion is not valid yet ('iat'/'nbf').", cid, person)
        if exp - iat > MAX_LIFETIME or iat < now - MAX_LIFETIME - LEEWAY:
            self._refuse("too_long", f"The assertion may live at most {MAX_LIFETIME} seconds.", cid, person)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not hmac.compare_digest(sub.encode(), x5t.encode()):
            self._refuse("wrong_sub", "The assertion's 'sub' must be the certificate's x5t#S256 thumbprint.",
                         cid, person)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 1 <= len(jti) <= 255:
            self._refuse("bad_claims", "The assertion needs a 'jti'.", cid, person)

    def _remember(self, cid: str, jti: str, person) -> None:
        """RFC 7523 §3 item 7: each assertion is accepted once."""
        now = utcnow()
        db.session.execute(UsedAssertion.__table__.delete().where(UsedAssertion.expires_at < now))
        try:
            with db.session.begin_nested():
                db.session.add(UsedAssertion(client_id=f"jwt-bearer:{cid}"[:64], jti=jti,
                                             expires_at=now + timedelta(seconds=MAX_LIFETIME + 2 * LEEWAY)))
        except IntegrityError:
            self._refuse("replayed", "The assertion has already been used.", cid, person)
        db.session.commit()

    def create_token_response(self):
        person, cert = self.request.user.person, self.request.certificate_check.record
        record("official_login.succeeded", actor=f"person:{person.sub}",
               target=f"client:{self.request.client.client_id}",
               detail={"method": "jwt-bearer", "serial": getattr(cert, "serial", None)})
        record_login("jwt-bearer", "success")
        return super().create_token_response()
