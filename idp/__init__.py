"""idp: the city's identity and single sign-on hub. ``create_app`` is the application factory."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, g, render_template, request
from flask_wtf.csrf import CSRFProtect

from . import config as config_module
from .limits import LimitedRequest
from .db import db

csrf = CSRFProtect()
log = logging.getLogger(__name__)


def create_app(test_config: dict | None = None, *, load_keys: bool = True) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.request_class = LimitedRequest
    os.makedirs(app.instance_path, exist_ok=True)
    settings = config_module.load(test_config, instance_path=app.instance_path)
    app.config.update(settings)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings["DATABASE_URL"],
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings),
        SESSION_COOKIE_NAME="idp_ui",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings["ISSUER"].startswith("https://"),
        WTF_CSRF_TIME_LIMIT=3600,
        # Flask-WTF's https Referer check compares with Host; we check Origin against the issuer instead.
        WTF_CSRF_SSL_STRICT=False,
        MAX_CONTENT_LENGTH=settings["MAX_CONTENT_LENGTH"],
        JSON_AS_ASCII=False,
    )
    from . import logs

    logs.install(config_module.log_format(settings), access=bool(settings["ACCESS_LOG"]))
    for problem in settings["INSECURE_WARNINGS"]:
        log.warning("INSECURE (development only): %s", problem)

    from . import models  # noqa: F401  (every table, for migrations)

    db.init_app(app)
    if not settings["DATABASE_URL"].startswith("sqlite"):
        from .db import ping_when_idle
        from .dbread import autocommit_never_pooled

        with app.app_context():
            ping_when_idle(db.engine, float(settings["DB_PING_AFTER_IDLE"]))
            autocommit_never_pooled(db.engine)
    csrf.init_app(app)

    from . import i18n

    i18n.init_app(app)

    from . import errors

    errors.init_app(app)

    from . import messaging

    messaging.init_app(app)

    from . import ops

    ops.init_app(app)
    _register_blueprints(app)
    _register_hooks(app)
    if load_keys:
        init_keys(app)

    from .oauth.documents import PublicDocuments
    from .oauth.lean import LeanEndpoints
    from .proxy import TrustedProxies

    app.wsgi_app = LeanEndpoints(app.wsgi_app, app)  # the busiest protocol requests' plain, successful case
    app.wsgi_app = PublicDocuments(app.wsgi_app, app)  # discovery and JWKS without Flask's per-request work
    ops.wrap_wsgi(app)
    app.wsgi_app = TrustedProxies(app.wsgi_app, config_module.trusted_proxy_networks(settings))

    from .cli import register_cli

    register_cli(app)
    return app


def start_logout_worker(app: Flask):
    """The per-process background threads (started by ``idp serve`` / WSGI): the back-channel logout
    delivery worker (``IDP_LOGOUT_WORKER``) and the automatic prune (``IDP_PRUNE_INTERVAL``), each
    started once and on its own setting. Returns the delivery worker, if it runs."""
    from .ops.retention import PruneWorker
    from .sessions.delivery import DeliveryWorker

    if int(app.config["PRUNE_INTERVAL"]) > 0 and "idp.prune_worker" not in app.extensions:
        pruner = PruneWorker(app)  # README "Pruning"
        pruner.start()
        app.extensions["idp.prune_worker"] = pruner
    if not app.config["LOGOUT_WORKER"] or "idp.logout_worker" in app.extensions:
        return app.extensions.get("idp.logout_worker")
    worker = DeliveryWorker(app)
    worker.start()
    app.extensions["idp.logout_worker"] = worker
    return worker


def init_keys(app: Flask) -> None:
    """Load signing and data-protection keys, and build the authorization server on them."""
    from .accounts.protection import Protector
    from .keystore import datakey
    from .keystore.service import token_grace
    from .keystore.signing import KeyStore
    from .oauth.endpoints import IntrospectionEndpoint, build_resource_protector
    from .oauth.server import build_authorization_server

    keys_dir = Path(app.config["KEYS_DIR"])
    store = KeyStore(keys_dir, app.config["KEYS_PASSPHRASE"], token_grace(app.config), app.config["KEYS_RELOAD_INTERVAL"])
    if app.config["ENV"] == "production" and not store.encrypted:
        raise config_module.ConfigError("refusing to start in production: signing keys are stored unencrypted")
    data_keys = datakey.load_keys(keys_dir, app.config["KEYS_PASSPHRASE"])
    app.extensions["idp.keystore"] = store
    app.extensions["idp.protector"] = Protector(data_keys, keys_dir=keys_dir, passphrase=app.config["KEYS_PASSPHRASE"],
                                                reload_interval=app.config["KEYS_RELOAD_INTERVAL"])
    # Derived from the root data key, which never rotates: secrets and subjects stay valid.
    app.extensions["idp.client_secret_key"] = datakey.derive(data_keys.root, "client-secret")
    app.extensions["idp.pairwise_key"] = datakey.derive(data_keys.root, "pairwise-subject")
    app.extensions["idp.recovery_code_key"] = datakey.derive(data_keys.root, "recovery-code")
    app.extensions["idp.dpop_nonce_key"] = datakey.derive(data_keys.root, "dpop-nonce")  # the same on every node
    app.extensions["idp.authorization_server"] = server = build_authorization_server(app)
    app.extensions["idp.introspection"] = IntrospectionEndpoint(server)  # its lookup and payload, for idp.oauth.lean
    app.extensions["idp.resource_protector"] = build_resource_protector()


def _engine_options(settings: dict) -> dict:
    """Statement parameters (login names, blind indexes, ciphertexts) never reach logs or error text.

    PostgreSQL: a connection idle for more than ``DB_PING_AFTER_IDLE`` seconds is checked before use
    (``db.ping_when_idle``), so after a database restart a stale pooled connection is replaced
    instead of failing the request; connecting and waiting for
    a pooled connection are bounded, so an outage is answered with 503 within seconds (README
    "Several nodes"); so is every statement (``DB_STATEMENT_TIMEOUT``, a connection option: no extra
    round trip).
    """
    if settings["DATABASE_URL"].startswith("sqlite"):
        return {"connect_args": {"timeout": 10}, "hide_parameters": True}
    connect_args = {"connect_timeout": settings["DB_CONNECT_TIMEOUT"]}
    if settings["DB_STATEMENT_TIMEOUT"] > 0:
        connect_args["options"] = f"-c statement_timeout={int(settings['DB_STATEMENT_TIMEOUT']) * 1000}"
    return {"pool_size": settings["DB_POOL_SIZE"], "max_overflow": settings["DB_MAX_OVERFLOW"],
            "pool_timeout": settings["DB_POOL_TIMEOUT"], "connect_args": connect_args, "hide_parameters": True}


def _register_blueprints(app: Flask) -> None:
    from .authn.certificate_views import bp as certificate_bp
    from .authn.views import bp as authn_bp
    from .oauth import views as oauth_views
    from .oauth.api import bp as official_api_bp
    from .pki.views import bp as pki_bp
    from .portal import businesses as portal_businesses
    from .portal.security import bp as security_bp
    from .seals import tsa_views
    from .portal import profile, recovery, registration
    from .portal import consents as consent_views
    from .seals.api import bp as seal_api_bp
    from .seals.views import bp as seal_pages_bp
    from .sessions import views as session_views

    app.register_blueprint(oauth_views.bp)
    app.register_blueprint(authn_bp)
    app.register_blueprint(certificate_bp)
    app.register_blueprint(security_bp)
    app.register_blueprint(session_views.bp)
    app.register_blueprint(portal_businesses.bp)
    app.register_blueprint(pki_bp)
    app.register_blueprint(official_api_bp)
    app.register_blueprint(registration.bp)
    app.register_blueprint(recovery.bp)
    app.register_blueprint(profile.bp)
    app.register_blueprint(consent_views.bp)
    app.register_blueprint(seal_api_bp)
    app.register_blueprint(seal_pages_bp)
    csrf.exempt(seal_api_bp)  # DPoP-bound tokens, no browser cookies
    app.register_blueprint(tsa_views.bp)
    csrf.exempt(tsa_views.timestamp)  # RFC 3161 §3.4 protocol endpoint: public, no browser session
    csrf.exempt(session_views.logout)  # RPs may POST logout requests; the confirmation form checks CSRF itself
    # Protocol endpoints authenticate clients, not browsers; /authorize checks CSRF on consent itself.
    for view in (oauth_views.token, oauth_views.revoke, oauth_views.introspect, oauth_views.userinfo,
                 oauth_views.authorize, oauth_views.pushed_authorization_request):
        csrf.exempt(view)

    @app.get("/")
    def home():
        from .sessions.current import current_session

        s = current_session()
        return render_template("home.html", person=s.person if s else None)


def _same_origin(origin: str | None, issuer: str) -> bool:
    """Forms post only from our own pages; a browser's Origin header says where a POST came from.

    Clients calling the back-channel endpoints send no Origin (not browsers) and pass; /authorize
    accepts cross-site POSTs from relying parties (OIDC Core §3.1.2.1), so it is exempt.
    """
    if origin is None or request.path in ("/authorize", "/logout", "/token", "/par", "/revoke", "/introspect",
                                          "/userinfo"):
        return True
    want = urlsplit(issuer)
    return origin == f"{want.scheme}://{want.netloc}"


def _register_hooks(app: Flask) -> None:
    from flask_babel import lazy_gettext as _l

    from .errors import render_error

    @app.before_request
    def _limits():
        # Per-request caches live in g (ours, Flask-WTF's CSRF token of this browser's session, and
        # Flask-Babel's locale); drop any left by an enclosing app context (tests with several browsers).
        for key in ("_idp_sso", "_idp_clients", app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), "_flask_babel"):
            g.pop(key, None)
        if len(request.query_string) > app.config["MAX_QUERY_LENGTH"]:
            return render_error(414, "uri_too_long", _l("The address is too long."))
        if (request.content_length or 0) > request.max_content_length:  # the view's limit (idp.limits)
            return render_error(413, "request_too_large", _l("The request is too large."))
        if request.method == "POST" and not _same_origin(request.headers.get("Origin"), app.config["ISSUER"]):
            return render_error(400, "invalid_request",
                                _l("The request came from another site. Go back to this site's page and try again."))
        return None

    from .oauth.dpop import offer_nonce

    app.after_request(offer_nonce)  # DPoP-Nonce (RFC 9449 §8, §9) on answers to requests with a proof

    @app.after_request
    def _security_headers(resp):
        h = resp.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "same-origin")  # and a same-origin POST still carries its Origin
        if resp.mimetype == "text/html":
            # Pages are never framed (clickjacking) and never cached (they carry personal data).
            h["X-Frame-Options"] = "DENY"
            h.setdefault("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                                    "frame-ancestors 'none'; form-action 'self' *")
            h["Cache-Control"] = "no-store"
        return resp
