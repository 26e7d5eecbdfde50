"""The browser part of an authorization code flow, with ``requests``: a person who logs in and consents.

``HubBrowser.authorize(url, redirect_uri)`` GETs an authorization URL, follows the hub's redirects
by hand, fills in the login form (``username``, ``password``, hidden ``csrf_token`` and ``next``)
and, when a consent page appears, submits ``decision=allow`` to the form's action. It stops at the
first redirect whose Location is the client's redirect URI and returns that URL without fetching it
(the relying party's callback is the caller's business).
"""
from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

REDIRECT_CODES = (301, 302, 303, 307, 308)


class Form:
    def __init__(self, attrs: dict):
        self.action = attrs.get("action") or ""
        self.method = (attrs.get("method") or "get").lower()
        self.fields: dict[str, str] = {}  # inputs with a name (hidden ones included)
        self.buttons: list[tuple[str, str]] = []  # (name, value) of submit buttons

    def __repr__(self) -> str:
        return f"<Form {self.method} {self.action} fields={sorted(self.fields)} buttons={self.buttons}>"


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._current = Form(a)
            self.forms.append(self._current)
        elif self._current is not None and tag == "input" and a.get("name"):
            if a.get("type", "text").lower() in ("submit", "button", "image"):
                self._current.buttons.append((a["name"], a.get("value", "")))
            else:
                self._current.fields[a["name"]] = a.get("value", "")
        elif self._current is not None and tag == "button" and a.get("name"):
            if a.get("type", "submit").lower() == "submit":
                self._current.buttons.append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def parse_forms(html: str) -> list[Form]:
    p = _FormParser()
    p.feed(html)
    p.close()
    return p.forms


def same_endpoint(location: str, redirect_uri: str) -> bool:
    """Is ``location`` the redirect URI (plus the response parameters)?"""
    return location == redirect_uri or location.startswith(redirect_uri + ("&" if "?" in redirect_uri else "?"))


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


class HubBrowser:
    """A person at a browser: one cookie jar, redirects followed by hand, never into the RP.

    After ``authorize``: ``pages`` lists the hub pages shown ("login", "consent") and ``requests``
    counts the HTTP requests made; SSO means ``pages == []`` and ``requests == 1``.
    """

    def __init__(self, username: str, password: str, *, timeout: float = 15):
        self.username, self.password = username, password
        self.http = requests.Session()
        self.timeout = timeout
        self.pages: list[str] = []
        self.requests = 0
        self.trail: list[str] = []

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "HubBrowser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _explain(self, why: str, resp: requests.Response | None = None) -> str:
        text = f"{why}\nrequests so far:\n  " + "\n  ".join(self.trail)
        if resp is not None:
            text += f"\nlast response: HTTP {resp.status_code}\n{resp.text[:1500]}"
        return text

    def authorize(self, url: str, redirect_uri: str, *, consent: str = "allow", max_requests: int = 12) -> str:
        """Run the browser part for ``url``; returns the redirect URI the hub sent the browser to."""
        self.pages, self.requests, self.trail = [], 0, []
        method, data = "GET", None
        logged_in = False
        while self.requests < max_requests:
            self.requests += 1
            self.trail.append(f"{method} {url}")
            resp = self.http.request(method, url, data=data, allow_redirects=False, timeout=self.timeout)
            method, data = "GET", None
            if resp.status_code in REDIRECT_CODES:
                location = urljoin(url, resp.headers["Location"])
                self.trail[-1] += f" -> {resp.status_code} {location}"
                if same_endpoint(location, redirect_uri):
                    return location
                if urlsplit(location).netloc != urlsplit(url).netloc:
                    raise AssertionError(self._explain(f"redirected off the hub, not to {redirect_uri}", resp))
                url = location
                continue
            self.trail[-1] += f" -> {resp.status_code}"
            forms = parse_forms(resp.text) if "html" in resp.headers.get("Content-Type", "") else []
            login = next((f for f in forms if {"username", "password"} <= set(f.fields)), None)
            decide = next((f for f in forms if any(n == "decision" for n, _ in f.buttons)), None)
            if resp.status_code == 200 and login is not None:
                if logged_in:
                    raise AssertionError(self._explain("the login page came back after logging in", resp))
                for hidden in ("csrf_token", "next"):
                    assert hidden in login.fields, self._explain(f"login form without {hidden!r}", resp)
                self.pages.append("login")
                logged_in = True
                url = urljoin(url, login.action or url)
                method = "POST"
                data = {**login.fields, "username": self.username, "password": self.password}
                continue
            if resp.status_code == 200 and decide is not None:
                values = {v for n, v in decide.buttons if n == "decision"}
                assert {"allow", "deny"} <= values, self._explain(f"consent buttons are {values}", resp)
                assert "csrf_token" in decide.fields, self._explain("consent form without csrf_token", resp)
                assert decide.method == "post" and decide.action, self._explain("consent form target", resp)
                self.pages.append("consent")
                url = urljoin(url, decide.action)
                method = "POST"
                data = {**decide.fields, "decision": consent}
                continue
            raise AssertionError(self._explain("unexpected page", resp))
        raise AssertionError(self._explain(f"no redirect to {redirect_uri} after {max_requests} requests"))
