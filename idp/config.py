"""Settings: defaults (one comment per key), then IDP_* environment, then explicit overrides.

``validate`` refuses settings that are unsafe in production (IDP_ENV=production).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
import zoneinfo
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"

DEFAULTS: dict[str, object] = {
    # "development" or "production"; production refuses unsafe settings below.
    "ENV": "development",
    # Public base URL of the hub; every published or redirected URL is built from it, never from Host.
    "ISSUER": "http://127.0.0.1:5000",
    # SQLAlchemy URL; SQLite under instance/ by default, postgresql+psycopg://... in production.
    "DATABASE_URL": None,
    # PostgreSQL connections each server process keeps open (pool), and may open beyond that.
    "DB_POOL_SIZE": 5,
    "DB_MAX_OVERFLOW": 10,
    # Seconds a request waits for a free pooled connection before it is answered 503.
    "DB_POOL_TIMEOUT": 5,
    # Seconds to wait for PostgreSQL to accept a new connection (a database outage answers 503 this fast).
    "DB_CONNECT_TIMEOUT": 3,
    # Seconds a pooled PostgreSQL connection may sit unused and still be used without a check (a ping
    # on every use would cost a round trip per request); 0 checks it every time.
    "DB_PING_AFTER_IDLE": 1,
    # 1: each server thread keeps one PostgreSQL connection for its one-statement reads and writes
    # (idp.dbread) instead of checking one out of the pool per statement. Unset, idp serve and
    # idp.wsgi turn it on (their threads live as long as the process) and everything else leaves it off.
    "DB_HOLD_CONNECTION": 0,
    # Seconds a PostgreSQL statement may run before PostgreSQL cancels it (the request then fails, its
    # transaction rolls back); 0: no limit. idp init's migrations are exempt. Not applied to SQLite.
    "DB_STATEMENT_TIMEOUT": 30,
    # Directory holding signing keys and the data-protection key (a mounted secret on several nodes).
    "KEYS_DIR": "keys",
    # Flask secret (CSRF tokens, signed cookies). Must be long and random in production.
    "SECRET_KEY": DEV_SECRET_KEY,
    # Passphrase protecting private keys at rest; required in production.
    "KEYS_PASSPHRASE": None,
    # Comma-separated addresses/networks allowed to pass X-Forwarded-* and client-certificate headers.
    "TRUSTED_PROXIES": "",
    # Authorization code lifetime, seconds (RFC 6749 §4.1.2 recommends at most 10 minutes).
    "CODE_TTL": 120,
    # Pushed authorization requests (RFC 9126): seconds a request_uri may wait for the browser to bring
    # it to /authorize (its expires_in); once there, it lasts PAR_INTERACTION_TTL for the sign-in.
    "PAR_TTL": 90,
    "PAR_INTERACTION_TTL": 900,
    # Access token lifetime, seconds.
    "ACCESS_TOKEN_TTL": 900,
    # ID token lifetime, seconds.
    "ID_TOKEN_TTL": 900,
    # Refresh token lifetime for session-bound grants, seconds (never beyond the SSO session).
    "REFRESH_TOKEN_TTL": 43200,
    # Refresh token lifetime when offline_access was granted, seconds.
    "OFFLINE_REFRESH_TOKEN_TTL": 30 * 86400,
    # JWS algorithm of RFC 9068 access tokens: ES256 (fast) or RS256.
    "ACCESS_TOKEN_ALG": "ES256",
    # SSO session idle timeout, seconds (slides on use).
    "SESSION_IDLE_TTL": 1800,
    # SSO session absolute lifetime, seconds.
    "SESSION_ABSOLUTE_TTL": 43200,
    # Name of the SSO session cookie.
    "SESSION_COOKIE": "idp_session",
    # acr values for assurance levels 1, 2 and 3 (space-separated URIs, in that order).
    "ACR_VALUES": "urn:idp:loa:1 urn:idp:loa:2 urn:idp:loa:3",
    # Largest accepted request body, bytes; larger requests get 413.
    "MAX_CONTENT_LENGTH": 64 * 1024,
    # Longest accepted query string, characters; longer requests get 414.
    "MAX_QUERY_LENGTH": 8 * 1024,
    # Seconds a private_key_jwt assertion's jti is remembered (longer than any assertion may live).
    "ASSERTION_MAX_AGE": 600,
    # DPoP nonces (RFC 9449 §8, §9): "on" makes every DPoP proof carry a nonce the hub provided
    # (a proof without it is answered use_dpop_nonce with the nonce in DPoP-Nonce); off by default,
    # because a client that does not retry on use_dpop_nonce would stop working.
    "DPOP_NONCE": "off",
    # Seconds one DPoP nonce window lasts; a nonce is accepted in its window and the next one.
    "DPOP_NONCE_LIFETIME": 300,
    # How often (seconds) a node re-reads the key directory to notice a rotation.
    "KEYS_RELOAD_INTERVAL": 2,
    # Seconds a new signing key is published before it signs (`idp keys rotate`). At least
    # 2 x KEYS_RELOAD_INTERVAL + 1 so every process publishes it first; the default 305 also covers
    # relying parties that keep the JWKS for its max-age (300 s) without refetching on a new kid.
    "KEYS_PUBLISH_AHEAD": 305,
    # Size in bits of new RS256 signing keys (idp init, idp keys rotate): 2048, 3072 or 4096.
    "SIGNING_RSA_BITS": 3072,
    # Seconds a server process reuses a client's registration (secret digest, grant types, URIs) before
    # reading it again: a client disabled or changed in the database is seen by every node within this.
    "CLIENT_CACHE_TTL": 10,
    # Leeway (seconds) for clock skew when checking client assertions.
    "CLOCK_LEEWAY": 60,
    # Run the back-channel logout delivery worker in each server process (off in unit tests).
    "LOGOUT_WORKER": 1,
    # Seconds the worker sleeps between passes when nothing wakes it.
    "LOGOUT_POLL_INTERVAL": 1,
    # Attempts per back-channel logout delivery before it is marked failed (and audited).
    "LOGOUT_MAX_ATTEMPTS": 8,
    # First retry delay in seconds; doubles per attempt (capped at 300 s).
    "LOGOUT_RETRY_BASE": 2,
    # Seconds to wait for a subsite's back-channel logout endpoint.
    "LOGOUT_TIMEOUT": 5,
    # Seconds a worker holds a claimed delivery; if it dies, another worker retries after this.
    "LOGOUT_LEASE": 30,
    # End sessions past their idle/absolute expiry and notify their subsites (1) or not (0).
    "LOGOUT_ON_EXPIRY": 1,
    # Failed password attempts for one login name within the window before it is locked.
    "LOGIN_MAX_FAILURES": 5,
    # Failed password attempts from one address within the window before it is locked.
    "LOGIN_IP_MAX_FAILURES": 50,
    # The window (seconds) in which failures are counted.
    "LOGIN_WINDOW_SECONDS": 900,
    # How long (seconds) a locked login name or address must wait.
    "LOGIN_LOCK_SECONDS": 900,
    # Seconds between sweeps for expired sessions (each worker process).
    "EXPIRY_SWEEP_INTERVAL": 30,
    # Seconds between automatic prunes (``idp prune``, run by the servers' background thread, one
    # process of one node at a time); 0: off (run ``idp prune`` from cron instead).
    "PRUNE_INTERVAL": 3600,
    # Hours dead rows are kept before a prune deletes them (``idp prune --keep-hours`` by default).
    "PRUNE_KEEP_HOURS": 24,
    # Key type of the hub's CAs and of keys generated for officials: "ec-p256" or "rsa-3072".
    "PKI_KEY_TYPE": "ec-p256",
    # Lifetime of an official's certificate, days.
    "PKI_CERT_DAYS": 365,
    # Lifetime of a CRL (nextUpdate - thisUpdate), days; a new one is published when half is left.
    "PKI_CRL_DAYS": 7,
    # Organization (O) in the CA names and in officials' certificate subjects.
    "PKI_ORGANIZATION": "本溪市人民政府",
    # PEM bundle of external (government) CA certificates also trusted for officials' certificates.
    "PKI_EXTERNAL_CA_FILE": None,
    # Subject attribute of an external certificate holding the holder's resident ID number
    # (e.g. "serialNumber" or a dotted OID), to map it to an official; unset: registered fingerprints only.
    "PKI_EXTERNAL_SUBJECT_ATTRIBUTE": None,
    # A seal applied in the browser needs a certificate sign-in at most this many seconds old.
    "SEAL_FRESH_LOGIN_SECONDS": 300,
    # Largest file accepted for a detached signature or for verification (with its signature), bytes.
    "SEAL_MAX_FILE_BYTES": 64 * 1024 * 1024,
    # Font file for generated seal images (a Simplified Chinese face; in a .ttc the SC face is chosen);
    # unset: fonts-noto-cjk (Noto Serif CJK SC Bold) or what fontconfig finds.
    "SEAL_FONT": None,
    # Key type of seal signing keys: "ec-p256" or "rsa-3072".
    "SEAL_KEY_TYPE": "ec-p256",
    # Lifetime of a seal's document-signing certificate, days (capped by the issuing CA's own).
    "SEAL_CERT_DAYS": 1095,
    # Largest seal image an operator may upload, bytes.
    "SEAL_IMAGE_MAX_BYTES": 1024 * 1024,
    # Most pixels (width × height) of an uploaded seal image.
    "SEAL_IMAGE_MAX_PIXELS": 2048 * 2048,
    # Side of a seal's visible stamp on a PDF, in points (1/72 in): 119 pt is a real 42 mm seal.
    "SEAL_STAMP_SIZE_PT": 119,
    # Largest PDF (bytes) accepted for sealing (the API and the officials' page).
    "SEAL_MAX_UPLOAD_BYTES": 20 * 1024 * 1024,
    # Most pages whose size the sealing page's stamp placer gets from one upload (a later page: asked again).
    "SEAL_PLACER_MAX_PAGES": 1000,
    # Policy OID in every timestamp token of the hub's TSA (RFC 3161 §2.4.2); requests naming another are refused.
    "TSA_POLICY_OID": "2.25.77094259346348185218404927771064258497",
    # Lifetime of the TSA's certificate, days (capped by the issuing CA's).
    "TSA_CERT_DAYS": 5 * 365,
    # Largest accepted timestamp request (POST /tsa), bytes; a request is about 100 bytes.
    "TSA_MAX_REQUEST_BYTES": 4096,
    # Issuer shown by authenticator apps for the hub's TOTP entries (otpauth:// URI, RFC 6238 apps).
    "TOTP_ISSUER": "本溪市统一身份认证",
    # Seconds a login that passed the password step may wait for its second factor.
    "MFA_PENDING_TTL": 300,
    # Failures of one account (login name, code destination) after which every further attempt must
    # wait 2^n seconds (n = failures so far) until the lock; 0 turns the progressive delay off.
    "THROTTLE_DELAY_AFTER": 3,
    # One-time codes requested for one destination (or reset identifier) within the window before a lock.
    "CODE_MAX_REQUESTS": 5,
    # One-time codes requested from one address within the window before a lock.
    "CODE_IP_MAX_REQUESTS": 30,
    # The window (seconds) in which code requests are counted.
    "CODE_WINDOW_SECONDS": 3600,
    # How long (seconds) a destination or address that requested too many codes must wait.
    "CODE_LOCK_SECONDS": 3600,
    # Wrong one-time codes for one destination within the login window before a lock (login lock time).
    "VERIFY_MAX_FAILURES": 10,
    # Wrong one-time codes from one address within the login window before a lock.
    "VERIFY_IP_MAX_FAILURES": 50,
    # Lifetime of a one-time verification code, seconds.
    "VERIFICATION_CODE_TTL": 600,
    # Seconds before a new code may be sent to the same destination (the earlier one stays valid).
    "VERIFICATION_RESEND_SECONDS": 60,
    # Wrong tries allowed per code; the code is dead after that many.
    "VERIFICATION_MAX_ATTEMPTS": 5,
    # How email is sent: "outbox" (files under OUTBOX_DIR, development) or "smtp".
    "EMAIL_BACKEND": "outbox",
    # How SMS is sent: "outbox", or the dotted path of an SmsProvider class ("package.module:Class").
    "SMS_BACKEND": "outbox",
    # JSON object handed to the SMS provider class (its account, endpoint, signature, ...).
    "SMS_OPTIONS": "{}",
    # Directory of the development outbox (one JSON file per message); default instance/outbox.
    "OUTBOX_DIR": None,
    # 1 lets IDP_ENV=production use the outbox (a staging system with no real messaging).
    "ALLOW_OUTBOX_IN_PRODUCTION": 0,
    # Send messages off the request (1), so a page answers as fast whether or not a message went out.
    "MESSAGING_BACKGROUND": 1,
    # SMTP relay host for the "smtp" email backend.
    "SMTP_HOST": "",
    # SMTP port: 587 for STARTTLS, 465 for SSL.
    "SMTP_PORT": 587,
    # SMTP login (empty: no AUTH).
    "SMTP_USERNAME": "",
    # SMTP password.
    "SMTP_PASSWORD": "",
    # Envelope and header sender, e.g. "本溪政务网 <noreply@benxi.gov.cn>".
    "SMTP_FROM": "",
    # "starttls", "ssl" (implicit TLS) or "none" (loopback relay only in production).
    "SMTP_SECURITY": "starttls",
    # Extra CA certificate file (PEM) trusted for the relay, besides the system's.
    "SMTP_CA_FILE": "",
    # Seconds to wait for the SMTP relay.
    "SMTP_TIMEOUT": 10,
    # IANA time zone in which pages show dates and times (stored times are UTC).
    "TIMEZONE": "Asia/Shanghai",
    # The app writes an access log on stdout (1) or none (0), under idp serve or any WSGI server;
    # query strings, cookies and credentials are never logged.
    "ACCESS_LOG": 0,
    # Log lines as "text" or "json" (one object per line, with the request id); "auto": json when
    # idp serve runs with ENV=production, text otherwise (development server, CLI, tests).
    "LOG_FORMAT": "auto",
    # Comma-separated addresses/networks that may read GET /metrics (others get 404); loopback by default.
    "METRICS_ALLOWED": "127.0.0.0/8,::1",
}

INT_KEYS = {k for k, v in DEFAULTS.items() if isinstance(v, int)}


class ConfigError(Exception):
    """Raised when settings are unsafe or malformed."""


def load(overrides: dict | None = None, instance_path: str | None = None) -> dict:
    cfg = dict(DEFAULTS)
    for key in DEFAULTS:
        env = os.environ.get(f"IDP_{key}")
        if env is not None and env != "":
            cfg[key] = env
    for key, value in (overrides or {}).items():
        cfg[key] = value
    for key in INT_KEYS:
        try:
            cfg[key] = int(cfg[key])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"IDP_{key} must be an integer") from exc
    if cfg["PRUNE_KEEP_HOURS"] < 0:
        raise ConfigError("IDP_PRUNE_KEEP_HOURS must be 0 or more (hours expired rows are kept)")
    cfg["ISSUER"] = str(cfg["ISSUER"]).rstrip("/")
    if not cfg["DATABASE_URL"]:
        base = Path(instance_path or "instance")
        cfg["DATABASE_URL"] = f"sqlite:///{(base / 'idp.sqlite3').resolve()}"
    cfg["KEYS_DIR"] = str(Path(str(cfg["KEYS_DIR"])).resolve())
    cfg["OUTBOX_DIR"] = str(Path(str(cfg["OUTBOX_DIR"] or Path(instance_path or "instance") / "outbox")).resolve())
    validate(cfg)
    return cfg


def acr_for_level(cfg: dict, level: int) -> str:
    return str(cfg["ACR_VALUES"]).split()[level - 1]


def level_for_acr(cfg: dict, acr: str) -> int | None:
    values = str(cfg["ACR_VALUES"]).split()
    return values.index(acr) + 1 if acr in values else None


def is_loopback(host: str | None) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def networks(cfg: dict, key: str) -> list:
    """A comma- or space-separated list of addresses/networks (``TRUSTED_PROXIES``, ``METRICS_ALLOWED``)."""
    nets = []
    for item in str(cfg.get(key) or "").replace(" ", ",").split(","):
        if item:
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError as exc:
                raise ConfigError(f"IDP_{key}: {item!r} is not an address or network") from exc
    return nets


def trusted_proxy_networks(cfg: dict) -> list:
    return networks(cfg, "TRUSTED_PROXIES")


def log_format(cfg: dict, serving: bool = False) -> str:
    """"text" or "json": ``LOG_FORMAT``, where "auto" means json for a production server."""
    fmt = str(cfg.get("LOG_FORMAT") or "auto")
    if fmt == "auto":
        return "json" if serving and cfg.get("ENV") == "production" else "text"
    return fmt


def _messaging_problems(cfg: dict) -> list[str]:
    """Malformed messaging settings raise; unsafe ones are returned (refused in production)."""
    import json

    if cfg["EMAIL_BACKEND"] not in ("outbox", "smtp"):
        raise ConfigError("IDP_EMAIL_BACKEND must be 'outbox' or 'smtp'")
    sms = str(cfg["SMS_BACKEND"])
    if sms != "outbox" and not re.fullmatch(r"[A-Za-z_][\w.]*[.:][A-Za-z_]\w*", sms):
        raise ConfigError("IDP_SMS_BACKEND must be 'outbox' or the dotted path of a provider class (package.module:Class)")
    try:
        if not isinstance(json.loads(str(cfg["SMS_OPTIONS"]) or "{}"), dict):
            raise ValueError
    except ValueError as exc:
        raise ConfigError("IDP_SMS_OPTIONS must be a JSON object") from exc
    if cfg["SMTP_SECURITY"] not in ("starttls", "ssl", "none"):
        raise ConfigError("IDP_SMTP_SECURITY must be 'starttls', 'ssl' or 'none'")
    if cfg["EMAIL_BACKEND"] == "smtp" and not (cfg["SMTP_HOST"] and cfg["SMTP_FROM"]):
        raise ConfigError("IDP_EMAIL_BACKEND=smtp needs IDP_SMTP_HOST and IDP_SMTP_FROM")
    problems = []
    outbox = [name for name, key in (("email", "EMAIL_BACKEND"), ("SMS", "SMS_BACKEND")) if cfg[key] == "outbox"]
    if outbox and not cfg["ALLOW_OUTBOX_IN_PRODUCTION"]:
        problems.append(f"{' and '.join(outbox)} go to the development outbox, not to people "
                        "(set IDP_EMAIL_BACKEND/IDP_SMS_BACKEND, or IDP_ALLOW_OUTBOX_IN_PRODUCTION=1 for staging)")
    if cfg["EMAIL_BACKEND"] == "smtp" and cfg["SMTP_SECURITY"] == "none" and not is_loopback(str(cfg["SMTP_HOST"])):
        problems.append("IDP_SMTP_SECURITY=none sends mail unencrypted to a relay that is not on this host")
    return problems


def validate(cfg: dict) -> None:
    if cfg["ENV"] not in ("development", "production"):
        raise ConfigError("IDP_ENV must be 'development' or 'production'")
    parts = urlsplit(cfg["ISSUER"])
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError("IDP_ISSUER must be an http(s) URL without query or fragment")
    if cfg["ACCESS_TOKEN_ALG"] not in ("ES256", "RS256"):
        raise ConfigError("IDP_ACCESS_TOKEN_ALG must be ES256 or RS256")
    if len(str(cfg["ACR_VALUES"]).split()) != 3:
        raise ConfigError("IDP_ACR_VALUES must list exactly three values (levels 1, 2, 3)")
    if cfg["PKI_KEY_TYPE"] not in ("ec-p256", "rsa-3072"):
        raise ConfigError("IDP_PKI_KEY_TYPE must be ec-p256 or rsa-3072")
    if cfg["SEAL_KEY_TYPE"] not in ("ec-p256", "rsa-3072"):
        raise ConfigError("IDP_SEAL_KEY_TYPE must be ec-p256 or rsa-3072")
    if cfg["SEAL_CERT_DAYS"] < 1 or cfg["SEAL_IMAGE_MAX_BYTES"] < 1 or cfg["SEAL_IMAGE_MAX_PIXELS"] < 256:
        raise ConfigError("IDP_SEAL_CERT_DAYS and IDP_SEAL_IMAGE_MAX_BYTES must be positive, "
                          "IDP_SEAL_IMAGE_MAX_PIXELS at least 256")
    if not 28 <= cfg["SEAL_STAMP_SIZE_PT"] <= 288:
        raise ConfigError("IDP_SEAL_STAMP_SIZE_PT must be between 28 and 288 points (10 mm to 100 mm)")
    if cfg["SEAL_MAX_UPLOAD_BYTES"] < 1024:
        raise ConfigError("IDP_SEAL_MAX_UPLOAD_BYTES must be at least 1024")
    if cfg["SEAL_PLACER_MAX_PAGES"] < 1:
        raise ConfigError("IDP_SEAL_PLACER_MAX_PAGES must be at least 1")
    for key in ("PKI_CERT_DAYS", "PKI_CRL_DAYS", "TSA_CERT_DAYS"):
        if not 1 <= cfg[key] <= 3650:
            raise ConfigError(f"IDP_{key} must be between 1 and 3650 days")
    if not re.fullmatch(r"[0-2](\.(0|[1-9][0-9]*))+", str(cfg["TSA_POLICY_OID"])):
        raise ConfigError("IDP_TSA_POLICY_OID must be a dotted object identifier such as 2.25.…")
    from .keystore.signing import RSA_BITS

    if cfg["SIGNING_RSA_BITS"] not in RSA_BITS:
        raise ConfigError("IDP_SIGNING_RSA_BITS must be 2048, 3072 or 4096")
    if cfg["KEYS_PUBLISH_AHEAD"] < 2 * cfg["KEYS_RELOAD_INTERVAL"] + 1:
        raise ConfigError("IDP_KEYS_PUBLISH_AHEAD must be at least 2 x IDP_KEYS_RELOAD_INTERVAL + 1 seconds, "
                          "or a process could sign with a key another one does not publish yet")
    if cfg["DPOP_NONCE"] not in ("off", "on"):
        raise ConfigError("IDP_DPOP_NONCE must be 'off' or 'on'")
    if not 5 <= cfg["PAR_TTL"] <= 600:
        raise ConfigError("IDP_PAR_TTL must be between 5 and 600 seconds (RFC 9126 §2.2)")
    if not 60 <= cfg["PAR_INTERACTION_TTL"] <= 3600:
        raise ConfigError("IDP_PAR_INTERACTION_TTL must be between 60 and 3600 seconds")
    if not 10 <= cfg["DPOP_NONCE_LIFETIME"] <= 86400:
        raise ConfigError("IDP_DPOP_NONCE_LIFETIME must be between 10 and 86400 seconds")
    if not 256 <= cfg["TSA_MAX_REQUEST_BYTES"] <= 65536:
        raise ConfigError("IDP_TSA_MAX_REQUEST_BYTES must be between 256 and 65536")
    trusted_proxy_networks(cfg)
    networks(cfg, "METRICS_ALLOWED")
    if cfg["LOG_FORMAT"] not in ("auto", "text", "json"):
        raise ConfigError("IDP_LOG_FORMAT must be 'auto', 'text' or 'json'")
    try:
        zoneinfo.ZoneInfo(str(cfg["TIMEZONE"]))
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise ConfigError("IDP_TIMEZONE must be an IANA time zone name such as Asia/Shanghai") from None
    production = cfg["ENV"] == "production"
    problems = _messaging_problems(cfg)
    if cfg["SECRET_KEY"] == DEV_SECRET_KEY or len(str(cfg["SECRET_KEY"])) < 32:
        problems.append("IDP_SECRET_KEY is the development default or shorter than 32 characters")
    if parts.scheme != "https" and not is_loopback(parts.hostname):
        problems.append("IDP_ISSUER uses http:// on a non-loopback host")
    if not cfg["KEYS_PASSPHRASE"]:
        problems.append("IDP_KEYS_PASSPHRASE is not set, so private keys would be stored unencrypted")
    if production and problems:
        raise ConfigError("refusing to start in production: " + "; ".join(problems))
    cfg["INSECURE_WARNINGS"] = problems
