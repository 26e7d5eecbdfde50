"""Copied from /work/shared/bench/oidc_login.py; changed only to accept an optional cookie jar
(``jar=``) so the caller keeps the logged-in session (used to mint codes in bulk).

Scripted, provider-agnostic authorization-code + PKCE login used to obtain a *user*
access token (for the userinfo scenario).

It drives whatever HTML the provider serves: follows redirects, and on every HTML page
submits the most plausible <form> (username/password fields are filled in, hidden fields
are kept, an "allow/authorize/accept/continue/sign in" button is pressed, "deny/cancel"
buttons are never pressed) until the provider redirects to redirect_uri with a code.
This works for plain HTML login + consent pages (node-oidc-provider with the bench
interaction, Django LoginView + DOT's authorize form, a typical Flask login page).
It does not run JavaScript.
"""
from __future__ import annotations

import base64
import hashlib
import html.parser
import http.cookiejar
import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request

USER_FIELD = re.compile(r"user|login|email|name|identifier", re.I)
APPROVE = re.compile(r"allow|authori[sz]e|approve|accept|consent|continue|confirm|yes|sign.?in|log.?in|submit|ok\b", re.I)
DENY = re.compile(r"deny|cancel|abort|reject|decline|\bno\b", re.I)


class _Form:
    def __init__(self, attrs):
        self.action = attrs.get("action") or ""
        self.method = (attrs.get("method") or "get").lower()
        self.fields: list[tuple[str, str, str]] = []  # (type, name, value)
        self.buttons: list[tuple[str, str]] = []  # (name, value or label)


class _FormParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._form: _Form | None = None
        self._button: dict | None = None
        self._button_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._form = _Form(a)
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input":
            typ = (a.get("type") or "text").lower()
            if typ in ("submit", "image"):
                self._form.buttons.append((a.get("name", ""), a.get("value", "")))
            elif typ in ("checkbox", "radio"):
                if "checked" in a:
                    self._form.fields.append((typ, a.get("name", ""), a.get("value", "on")))
            else:
                self._form.fields.append((typ, a.get("name", ""), a.get("value", "")))
        elif tag == "button":
            if (a.get("type") or "submit").lower() == "submit":
                self._button = a
                self._button_text = []

    def handle_data(self, data):
        if self._button is not None:
            self._button_text.append(data)

    def handle_endtag(self, tag):
        if tag == "button" and self._button is not None and self._form is not None:
            label = self._button.get("value") or "".join(self._button_text).strip()
            self._form.buttons.append((self._button.get("name", ""), label, ))
            self._button = None
        elif tag == "form":
            self._form = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class LoginError(RuntimeError):
    pass


def _pick_form(forms: list[_Form]) -> _Form:
    with_pw = [f for f in forms if any(t == "password" for t, _, _ in f.fields)]
    if with_pw:
        return with_pw[0]
    posts = [f for f in forms if f.method == "post"]
    for f in posts:
        if any(APPROVE.search(n + " " + v) and not DENY.search(n + " " + v) for n, v in f.buttons):
            return f
    if posts:
        return posts[0]
    if forms:
        return forms[0]
    raise LoginError("no <form> on the page")


def _fill(form: _Form, username: str, password: str) -> list[tuple[str, str]]:
    data: list[tuple[str, str]] = []
    has_pw = any(t == "password" for t, _, _ in form.fields)
    for typ, name, value in form.fields:
        if not name:
            continue
        if typ == "password":
            data.append((name, password))
        elif has_pw and typ in ("text", "email") and USER_FIELD.search(name):
            data.append((name, username))
        else:
            data.append((name, value))
    buttons = [(n, v) for n, v in form.buttons if not DENY.search(f"{n} {v}")]
    chosen = next((b for b in buttons if APPROVE.search(f"{b[0]} {b[1]}")), buttons[0] if buttons else None)
    if chosen and chosen[0]:
        data.append(chosen)
    return data


def get_user_tokens(discovery: dict, client_id: str, client_secret: str, username: str, password: str,
                    redirect_uri: str, scope: str = "openid profile email", auth_method: str = "client_secret_basic",
                    extra_auth_params: dict | None = None, max_steps: int = 15, timeout: float = 10.0,
                    jar: http.cookiejar.CookieJar | None = None) -> dict:
    """Run the authorization code flow (with PKCE S256) and return the token response.

    ``jar``: cookie jar to use (and keep the provider's session cookies in); a new one by default."""
    jar = jar if jar is not None else http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPCookieProcessor(jar))
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    params = {
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
        "state": state, "nonce": secrets.token_urlsafe(16), "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra_auth_params or {})
    url = discovery["authorization_endpoint"] + "?" + urllib.parse.urlencode(params)
    data: bytes | None = None
    code = None
    trace = []
    for _ in range(max_steps):
        req = urllib.request.Request(url, data=data, headers={"Accept": "text/html"})
        if data is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
            # Django's CSRF check wants a same-origin Referer/Origin on POST.
            req.add_header("Origin", "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(url)))
            req.add_header("Referer", trace[-1][1] if trace else url)
        try:
            resp = opener.open(req, timeout=timeout)
            status, headers, body = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, headers, body = e.code, e.headers, e.read()
        trace.append((status, url))
        if status in (301, 302, 303, 307, 308):
            loc = urllib.parse.urljoin(url, headers["Location"])
            if loc.startswith(redirect_uri):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)
                if "error" in q:
                    raise LoginError(f"authorization error: {q}")
                if q.get("state", [None])[0] != state:
                    raise LoginError("state mismatch")
                code = q["code"][0]
                break
            url, data = loc, None
            continue
        if status == 200 and b"<form" in body.lower():
            p = _FormParser()
            p.feed(body.decode("utf-8", "replace"))
            form = _pick_form(p.forms)
            fields = _fill(form, username, password)
            target = urllib.parse.urljoin(url, form.action) if form.action else url
            if form.method == "post":
                url, data = target, urllib.parse.urlencode(fields).encode()
            else:
                url, data = target + ("&" if "?" in target else "?") + urllib.parse.urlencode(fields), None
            continue
        raise LoginError(f"unexpected HTTP {status} at {url}: {body[:300]!r}")
    if code is None:
        raise LoginError(f"no authorization code after {max_steps} steps: {trace}")

    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier}
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if auth_method == "client_secret_post":
        form.update(client_id=client_id, client_secret=client_secret)
    else:
        headers["Authorization"] = basic_auth(client_id, client_secret)
    req = urllib.request.Request(discovery["token_endpoint"], data=urllib.parse.urlencode(form).encode(),
                                 headers=headers)
    try:
        with opener.open(req, timeout=timeout) as resp:
            tokens = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise LoginError(f"token endpoint HTTP {e.code}: {e.read()[:300]!r}") from None
    if "access_token" not in tokens:
        raise LoginError(f"no access_token in token response: {tokens}")
    return tokens


def basic_auth(client_id: str, client_secret: str) -> str:
    """HTTP Basic per RFC 6749 section 2.3.1 (form-urlencode id and secret first)."""
    raw = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(raw.encode()).decode()
