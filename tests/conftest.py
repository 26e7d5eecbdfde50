"""Fixtures: an app on a fresh SQLite database with keys (copied from session templates, so each
test is fast), its test client and CLI runner, and helpers that act like a browser and an RP."""
from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import functools
import secrets
import shutil
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from idp import create_app
from idp.accounts import passwords
from tests.services.fixtures import postgres_database, postgres_server, postgres_url  # noqa: F401

PRODUCTION_PASSWORD_HASHER = passwords._hasher  # read before a fixture swaps it
TEST_SECRET = "test-secret-key-" + "x" * 32
PASSWORD = "correct horse battery"


def _config(tmp, db_url=None, **extra):
    cfg = {
        "DATABASE_URL": db_url or f"sqlite:///{tmp / 'idp.sqlite3'}",
        "KEYS_DIR": str(tmp / "keys"),
        "SECRET_KEY": TEST_SECRET,
        "TESTING": True,
        "KEYS_RELOAD_INTERVAL": 0,
        "OUTBOX_DIR": str(tmp / "outbox"),
    }
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="session", autouse=True)
def parse_each_signing_key_once():
    """Every test's keys are copies of the session template's, and ``cryptography`` checks an RSA
    private key's consistency each time it loads one: about 0.1–0.3 s for the RSA-3072 signing key, on
    every app the tests create. Loading is a pure function of the PEM and the passphrase, so each
    distinct pair is parsed (and checked) once per test process; a different file or passphrase is
    parsed, and refused, exactly as before (failures are not remembered)."""
    from idp.keystore import signing

    load = functools.lru_cache(maxsize=64)(signing.load_private_key_pem)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(signing, "load_private_key_pem", load)
        yield


@contextlib.contextmanager
def cheap_password_hashing():
    """argon2id with a small cost (1 MiB, t=1, p=1) instead of the production one (64 MiB, t=3, p=4:
    about 0.25 s of CPU a hash or check, and most tests create a citizen and log in). The same code
    path (idp.accounts.passwords, argon2id); restored afterwards; a no-op if that module is
    reorganised."""
    from argon2 import PasswordHasher

    if not hasattr(passwords, "_hasher"):
        yield
        return
    saved = passwords._hasher, getattr(passwords, "_dummy", None)
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    if hasattr(passwords, "_dummy"):
        passwords._dummy = None
    try:
        yield
    finally:
        passwords._hasher = saved[0]
        if hasattr(passwords, "_dummy"):
            passwords._dummy = saved[1]


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing_in_process():
    """Tests in this process hash passwords cheaply (see ``cheap_password_hashing``); live hubs run as
    separate processes and keep the production cost. A test about the cost itself asks for
    ``production_password_hashing``."""
    with cheap_password_hashing():
        yield


@pytest.fixture
def production_password_hashing():
    """The production argon2id cost for one test (undoes ``cheap_password_hashing_in_process``)."""
    saved = passwords._hasher, passwords._dummy
    passwords._hasher, passwords._dummy = PRODUCTION_PASSWORD_HASHER, None
    yield
    passwords._hasher, passwords._dummy = saved


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory):
    """Keys and a migrated SQLite database made once; tests get copies."""
    from idp.keystore.service import ensure_keys
    from idp.migrations_lock import upgrade_database

    tmp = tmp_path_factory.mktemp("template")
    app = create_app(_config(tmp), load_keys=False)
    with app.app_context():
        ensure_keys(app.config)
        upgrade_database()
        from idp.db import db

        db.engine.dispose()  # closes the last connection: SQLite checkpoints the WAL into the file
    return tmp


# Settings the CA and the TSA are made from (URLs in their certificates, key type, validity, key
# encryption): a test that changes one gets its CA made for it instead of the template's.
CA_SETTINGS = ("ISSUER", "KEYS_PASSPHRASE", "PKI_KEY_TYPE", "PKI_ORGANIZATION", "PKI_CRL_DAYS", "TSA_CERT_DAYS")


def _template_with(template_dir, tmp, *makers):
    shutil.copytree(template_dir / "keys", tmp / "keys")
    shutil.copy(template_dir / "idp.sqlite3", tmp / "idp.sqlite3")
    app = create_app(_config(tmp))
    with app.app_context():
        for make in makers:
            make()
        from idp.db import db

        db.engine.dispose()
    return tmp


@pytest.fixture(scope="session")
def ca_template_dir(template_dir, tmp_path_factory):
    """The template plus the hub's CA as ``idp init`` makes it (keys/ca, the CRL rows, the audit
    events), made once; tests asking for ``ca`` get copies."""
    from idp.pki.service import ensure_ca

    return _template_with(template_dir, tmp_path_factory.mktemp("ca-template"), ensure_ca)


@pytest.fixture(scope="session")
def hub_ca_template_dir(template_dir, tmp_path_factory):
    """The template plus the CA and the TSA (keys/tsa and its certificate row), as ``idp init`` makes
    them, made once; tests asking for ``hub_ca`` get copies."""
    from idp.pki.service import ensure_ca
    from idp.seals.tsa import ensure_tsa

    return _template_with(template_dir, tmp_path_factory.mktemp("hub-ca-template"), ensure_ca, ensure_tsa)


@pytest.fixture
def instance(request, tmp_path, template_dir, app_config):
    """A copy of the template; of the one with the CA (and the TSA) when the test uses ``ca`` (or
    ``hub_ca``) with the default CA settings (making them per test costs ~0.1 s)."""
    source = template_dir
    if not set(app_config) & set(CA_SETTINGS):
        if "hub_ca" in request.fixturenames:
            source = request.getfixturevalue("hub_ca_template_dir")
        elif "ca" in request.fixturenames:
            source = request.getfixturevalue("ca_template_dir")
    shutil.copytree(source / "keys", tmp_path / "keys")
    shutil.copy(source / "idp.sqlite3", tmp_path / "idp.sqlite3")
    return tmp_path


@pytest.fixture
def app_config():
    """Override in a test module to change settings."""
    return {}


@pytest.fixture
def app(instance, app_config):
    app = create_app(_config(instance, **app_config))
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def user(app):
    from idp.accounts.service import create_citizen

    return create_citizen(username="alice", password=PASSWORD, name="张三", phone="13800138000",
                          email="alice@example.cn", id_number="11010519491231002X")


@pytest.fixture
def ca(app):
    """The hub's CA as ``idp init`` makes it (copied from ``ca_template_dir`` unless the test changes a
    CA setting); returns the CA authorities (``idp.pki.service.authorities()``)."""
    from idp.pki.service import authorities, ensure_ca

    ensure_ca()
    return authorities()


@pytest.fixture
def hub_ca(app):
    """The hub's CA and its timestamp authority, as ``idp init`` makes them (copied from
    ``hub_ca_template_dir`` likewise); returns the CA authorities."""
    from idp.pki.service import authorities, ensure_ca
    from idp.seals.tsa import ensure_tsa

    ensure_ca()
    ensure_tsa()
    return authorities()


def make_rp(app, **kw):
    """Register a client; returns a dict with client_id, client_secret and redirect_uri."""
    from idp.oauth.clients import create_client

    redirect = kw.pop("redirect_uri", "https://rp.example.cn/callback")
    kw.setdefault("name", "测试子站")
    kw.setdefault("redirect_uris", [redirect])
    c, secret = create_client(**kw)
    return {"client_id": c.client_id, "client_secret": secret, "redirect_uri": redirect}


@pytest.fixture
def rp(app):
    return make_rp(app, first_party=False)


@pytest.fixture
def rp2(app):
    return make_rp(app, name="第二子站", redirect_uri="https://rp2.example.cn/cb", first_party=True)


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def form_fields(html: str) -> dict:
    fields = {}
    for m in re.finditer(r"<input([^>]*)>", html):
        attrs = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if "name" in attrs:
            fields[attrs["name"]] = unescape(attrs.get("value", ""))
    return fields


class Browser:
    """Drives the hub's pages through the Flask test client, like a person would."""

    def __init__(self, client):
        self.client = client

    def login(self, username="alice", password=PASSWORD, next_url="/"):
        page = self.client.get("/login?" + urlencode({"next": next_url}))
        fields = form_fields(page.get_data(as_text=True))
        return self.client.post("/login", data={**fields, "username": username, "password": password})

    def authorize(self, rp, *, scope="openid profile", pkce=True, extra=None, follow_login=None, consent="allow"):
        """Run /authorize; log in and consent when asked. Returns (final response, verifier)."""
        verifier, challenge = pkce_pair()
        params = {"response_type": "code", "client_id": rp["client_id"], "redirect_uri": rp["redirect_uri"],
                  "scope": scope, "state": "st-" + secrets.token_hex(4), "nonce": "n-" + secrets.token_hex(4)}
        if pkce:
            params.update(code_challenge=challenge, code_challenge_method="S256")
        params.update(extra or {})
        params = {k: v for k, v in params.items() if v is not None}
        resp = self.client.get("/authorize?" + urlencode(params))
        if resp.status_code == 303 and resp.location.startswith("/login") and follow_login:
            login_url = resp.location
            page = self.client.get(login_url)
            fields = form_fields(page.get_data(as_text=True))
            resp = self.client.post("/login", data={**fields, "username": follow_login[0], "password": follow_login[1]})
            assert resp.status_code == 303, resp.get_data(as_text=True)
            resp = self.client.get(resp.location)
        if resp.status_code == 200 and b'name="decision"' in resp.data and consent:
            html = resp.get_data(as_text=True)
            action = unescape(re.search(r'<form method="post" action="([^"]+)"', html).group(1))
            resp = self.client.post(action, data={**form_fields(html), "decision": consent})
        resp.params, resp.verifier = params, verifier
        return resp

    def code(self, rp, **kw):
        kw.setdefault("follow_login", ("alice", PASSWORD))
        resp = self.authorize(rp, **kw)
        assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
        q = parse_qs(urlsplit(resp.location).query)
        assert "code" in q, resp.location
        return q["code"][0], resp.verifier, resp.params


@pytest.fixture
def browser(client):
    return Browser(client)


def basic(rp) -> dict:
    raw = f"{rp['client_id']}:{rp['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def exchange(client, rp, code, verifier, **extra):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": rp["redirect_uri"],
            "code_verifier": verifier, **extra}
    return client.post("/token", data=data, headers=basic(rp))


@pytest.fixture
def tokens(client, browser, rp, user):
    """A completed code flow for ``rp``: the token response JSON."""
    code, verifier, _ = browser.code(rp)
    resp = exchange(client, rp, code, verifier)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Make ``--dist loadgroup`` honour ``xdist_group`` marks on pytest >= 9.2.

    pytest 9.2 keeps node ids in ``item._id`` (a ``NodeId``), while pytest-xdist <= 3.8 still appends
    its ``@group`` suffix to ``item._nodeid``, so grouping silently stops and every worker starts its
    own live hub or browser demo (pytest-dev/pytest-xdist#1386, fix proposed in #1388). This applies
    the suffix the new way and does nothing when xdist already did it or the internals differ.
    Remove once xdist is fixed.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    try:
        from _pytest.nodeid import coerce_node_id
    except ImportError:
        return
    for item in items:
        if not hasattr(item, "_id"):
            continue
        names = {str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                 for m in item.iter_markers("xdist_group")}
        if names and "@" not in item.nodeid.rpartition("]")[2]:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(sorted(names))}")
