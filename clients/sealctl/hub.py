"""Talking to the hub: discovery, the JWT bearer grant (RFC 7523 §2.1), DPoP proofs (RFC 9449 §4.2);
every request asks for answers in the tool's language (``lang``).

DPoP nonces (RFC 9449 §8, §9): a hub may require a nonce it provided in every proof. The tool keeps
the last ``DPoP-Nonce`` each hub sent (``Nonces``: in the state directory, so the next run's first
proof carries it too) and puts it in the next proof; answered ``use_dpop_nonce`` (400 at the token
endpoint, 401 at a resource), it signs a new proof with the nonce from that answer and tries once
more."""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from . import lang
from .keys import OfficialKey
from .lang import t

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 120  # seconds (the hub accepts at most 300)
TIMEOUT = 15
UPLOAD_TIMEOUT = 120  # sealing a large document takes longer than a JSON call


class HubError(Exception):
    """A one-line, readable failure (network, protocol or a refusal by the hub)."""


class Nonces:
    """The last ``DPoP-Nonce`` each hub (``scheme://host:port``) sent (RFC 9449 §8, §9); with a
    ``State``, also kept in its ``dpop-nonce.json`` for the next run. A missing, unreadable or
    unwritable file only means no nonce: the hub then asks for one and the tool retries."""

    FILE = "dpop-nonce.json"

    def __init__(self, state: State | None = None):
        self.state = state
        stored = (state.load(self.FILE) if state else None) or {}
        self._last = {k: v for k, v in stored.items() if isinstance(k, str) and isinstance(v, str) and v}

    def get(self, origin: str) -> str | None:
        return self._last.get(origin)

    def remember(self, origin: str, nonce: str) -> None:
        if self._last.get(origin) == nonce:
            return
        self._last[origin] = nonce
        if self.state is not None:
            try:
                self.state.save(self.FILE, self._last)
            except OSError:
                pass  # next run asks the hub again: one more round trip, nothing lost

    def clear(self) -> None:
        self._last.clear()


_nonces = Nonces()  # callers that give none (the library used in-process): this process only


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(resp: requests.Response, what: str, *, protocol: bool = False) -> dict:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise HubError(t("not_json", what=what, status=resp.status_code))
    if resp.status_code != 200:
        raise HubError(lang.refusal(what, resp.status_code, body, protocol=protocol))
    return body


def _unreachable(what: str, url: str, exc: Exception) -> HubError:
    return HubError(t("unreachable", what=what, host=urlsplit(url).netloc, error=type(exc).__name__))


def _get(url: str, what: str, **kw) -> requests.Response:
    try:
        return requests.get(url, timeout=TIMEOUT, headers=lang.headers(), **kw)
    except requests.RequestException as exc:
        raise _unreachable(what, url, exc) from exc


def discover(hub: str) -> dict:
    """The hub's provider metadata (OIDC Discovery §4); endpoints are never hard-coded."""
    hub = hub.rstrip("/")
    meta = _json(_get(hub + "/.well-known/openid-configuration", "discovery"), "discovery")
    if meta.get("issuer") != hub:
        raise HubError(t("issuer_mismatch", issuer=meta.get("issuer"), hub=hub))
    if GRANT_TYPE not in meta.get("grant_types_supported", []):
        raise HubError(t("no_jwt_bearer"))
    if not meta.get("dpop_signing_alg_values_supported"):
        raise HubError(t("no_dpop"))
    return meta


def dpop_proof(key: OfficialKey, method: str, url: str, access_token: str | None = None,
               nonce: str | None = None) -> str:
    """RFC 9449 §4.2: typ dpop+jwt, the public jwk, htm, htu, iat, a fresh jti, ath at resources, and
    the hub's nonce when it gave one (§8, §9)."""
    claims = {"htm": method, "htu": url.split("?")[0].split("#")[0], "iat": int(time.time()),
              "jti": secrets.token_urlsafe(16)}
    if access_token is not None:
        claims["ath"] = _b64url(hashlib.sha256(access_token.encode("ascii")).digest())
    if nonce is not None:
        claims["nonce"] = nonce
    return key.sign_jwt({"typ": "dpop+jwt", "jwk": key.public_jwk()}, claims)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _asks_for_nonce(resp: requests.Response) -> bool:
    """``use_dpop_nonce``: 400 with the error in the body at the token endpoint (RFC 9449 §8), 401 with
    it in the ``DPoP`` challenge at a resource (§9); either way with a ``DPoP-Nonce`` to use."""
    if not resp.headers.get("DPoP-Nonce"):
        return False
    if resp.status_code == 401:
        return 'error="use_dpop_nonce"' in resp.headers.get("WWW-Authenticate", "")
    if resp.status_code == 400:
        try:
            body = resp.json()
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("error") == "use_dpop_nonce"
    return False


def _with_proof(url: str, what: str, send, nonces: Nonces | None) -> requests.Response:
    """``send(nonce)`` makes the request with a new proof carrying ``nonce``; the hub's last nonce
    first, and once more with the one it asks for (RFC 9449 §8, §9). Remembers the nonce it answers with."""
    nonces = _nonces if nonces is None else nonces
    origin = _origin(url)
    try:
        resp = send(nonces.get(origin))
        if _asks_for_nonce(resp):
            nonces.remember(origin, resp.headers["DPoP-Nonce"])
            resp = send(nonces.get(origin))
    except requests.RequestException as exc:
        raise _unreachable(what, url, exc) from exc
    if resp.headers.get("DPoP-Nonce"):
        nonces.remember(origin, resp.headers["DPoP-Nonce"])
    return resp


def certificate_thumbprint(key: OfficialKey) -> str:
    """``x5t#S256`` of the leaf certificate (RFC 7515 §4.1.8): base64url SHA-256 of its DER."""
    return _b64url(hashlib.sha256(base64.b64decode(key.x5c()[0])).digest())


def assertion(key: OfficialKey, client_id: str, audience: str) -> str:
    """RFC 7523 §3: iss = the tool's client_id, sub = the certificate (its x5t#S256, RFC 7515 §4.1.8),
    aud = the token endpoint; the chain in x5c (RFC 7515 §4.1.6)."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": certificate_thumbprint(key), "aud": audience, "iat": now,
              "exp": now + ASSERTION_LIFETIME, "jti": secrets.token_urlsafe(16)}
    return key.sign_jwt({"typ": "JWT", "x5c": key.x5c()}, claims)


def login(hub: str, key: OfficialKey, client_id: str, nonces: Nonces | None = None) -> dict:
    """Sign in with the key; the token response plus what later calls need."""
    meta = discover(hub)
    endpoint = meta["token_endpoint"]

    def send(nonce):
        return requests.post(endpoint, timeout=TIMEOUT,
                             headers={"DPoP": dpop_proof(key, "POST", endpoint, nonce=nonce), **lang.headers()},
                             data={"grant_type": GRANT_TYPE, "assertion": assertion(key, client_id, endpoint)})

    resp = _with_proof(endpoint, "login", send, nonces)
    token = _json(resp, "login", protocol=True)
    if token.get("token_type", "").lower() != "dpop" or not token.get("access_token"):
        raise HubError(t("not_dpop_bound"))
    return {"hub": meta["issuer"], "access_token": token["access_token"],
            "expires_at": int(time.time()) + int(token.get("expires_in", 0)), "client_id": client_id}


def _bound(key: OfficialKey, method: str, url: str, token: str, nonce: str | None) -> dict:
    """The headers of a request with the DPoP-bound token (RFC 9449 §7.1): the token, a new proof for
    this request, and the language to answer in."""
    return {"Authorization": f"DPoP {token}", "DPoP": dpop_proof(key, method, url, token, nonce), **lang.headers()}


def call(state: dict, key: OfficialKey, method: str, path: str, nonces: Nonces | None = None) -> dict:
    """A DPoP-protected call to the hub (RFC 9449 §7.1)."""
    url = state["hub"] + path
    token = state["access_token"]

    def send(nonce):
        return requests.request(method, url, headers=_bound(key, method, url, token, nonce), timeout=TIMEOUT)

    return _json(_with_proof(url, path, send, nonces), path)


def call_raw(state: dict, key: OfficialKey, method: str, path: str, *, body: bytes, content_type: str,
             params: dict | None = None, nonces: Nonces | None = None) -> requests.Response:
    """A DPoP-protected upload whose answer is a file (a sealed PDF, a signature); errors are JSON."""
    url = state["hub"] + path
    token = state["access_token"]

    def send(nonce):
        headers = {**_bound(key, method, url, token, nonce), "Content-Type": content_type}
        return requests.request(method, url, headers=headers, params=params or None, data=body,
                                timeout=UPLOAD_TIMEOUT)

    resp = _with_proof(url, path, send, nonces)
    if resp.status_code != 200:
        _json(resp, path)  # raises with the hub's error_description
        raise HubError(t("http_status", what=path, status=resp.status_code))
    return resp


def verify(hub: str, document: bytes, signature: bytes | None) -> tuple[int, dict]:
    """The hub's public verification API (no sign-in): (HTTP status, report)."""
    files = {"file": ("document", document, "application/octet-stream")}
    if signature is not None:
        files["signature"] = ("signature.p7s", signature, "application/pkcs7-signature")
    url = hub.rstrip("/") + "/api/seals/verify"
    try:
        resp = requests.post(url, files=files, timeout=UPLOAD_TIMEOUT, headers=lang.headers())
    except requests.RequestException as exc:
        raise _unreachable("verify", url, exc) from exc
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "verdict" not in body:
        raise HubError(lang.refusal("verify", resp.status_code, body if isinstance(body, dict) else {},
                                    protocol=False))
    return resp.status_code, body


class State:
    """The state directory (``--state`` or ``SEALCTL_STATE``): files readable by the owner only (0600)."""

    def __init__(self, directory: str | None):
        directory = directory or os.environ.get("SEALCTL_STATE")
        if not directory:
            directory = str(Path.home() / ".config" / "sealctl")
        self.dir = Path(directory)

    def _path(self, name: str) -> Path:
        return self.dir / name

    def save(self, name: str, data: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(name)
        # A temporary file of this writer's own (0600 from ``mkstemp``), renamed over the old one: two
        # sealctl runs saving at once never write into each other's file, and a reader sees one
        # whole version or the other.
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def nonces(self) -> Nonces:
        """The hubs' last DPoP nonces, kept here between runs."""
        return Nonces(self)

    def load(self, name: str) -> dict | None:
        try:
            data = json.loads(self._path(name).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None
