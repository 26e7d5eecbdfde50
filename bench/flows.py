"""The authorization code scenarios, for our hub and for the peers alike: a browser session signed in
at a provider (its cookies) and one client of that provider.

* ``sso_round_trip`` (``sso_iteration``): GET on the authorization endpoint with the session cookie
  -> a redirect (302 or 303) carrying ``code`` -> POST on the token endpoint with the client's
  authentication and the PKCE verifier -> 200 with an ``id_token``. One iteration = both requests.
* ``code_exchange``: codes minted over the session first (``mint_codes``), then only the POST /token
  is measured (``code_exchange_iteration``).

The requests are built up front (``CodeFlow.authorize_requests``: one per PKCE pair, a fresh state
each), so the load generator does no URL or hashing work per iteration.
"""
from __future__ import annotations

import collections
import http.cookiejar
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from loadgen import Exhausted, IterationFailed, raw_request, run_python
from util import http_json, pkce_pair


def cookie_header(jar: http.cookiejar.CookieJar, url: str) -> str:
    """The Cookie header a browser would send to ``url`` from ``jar`` (domain, path and expiry rules of
    RFC 6265 as ``http.cookiejar`` applies them): e.g. oidc-provider's ``_interaction`` cookies, scoped
    to ``/interaction/<uid>``, are left out of requests to its authorization endpoint."""
    req = urllib.request.Request(url)
    jar.add_cookie_header(req)
    return req.get_header("Cookie") or ""


@dataclass
class CodeFlow:
    """A signed-in session (``cookie``) at a provider and a confidential client of it."""

    authz_url: str
    token_url: str
    client_id: str
    client_auth: str  # the token endpoint's Authorization header (HTTP Basic, RFC 6749 §2.3.1)
    redirect_uri: str
    cookie: str
    scope: str = "openid profile email"
    code_ttl: float = 60.0  # how long the provider's codes live, s: the minting must not outlast them
    pairs: list = field(default_factory=lambda: [pkce_pair() for _ in range(256)])  # each code binds one pair

    def form_headers(self) -> dict:
        return {"Authorization": self.client_auth, "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json"}

    def authorize_requests(self) -> list[bytes]:
        """One pre-built GET on the authorization endpoint per PKCE pair, carrying the session cookie."""
        out = []
        for i, (_, challenge) in enumerate(self.pairs):
            q = urllib.parse.urlencode({"response_type": "code", "client_id": self.client_id,
                                        "redirect_uri": self.redirect_uri, "scope": self.scope, "state": f"s{i}",
                                        "code_challenge": challenge, "code_challenge_method": "S256"})
            out.append(raw_request("GET", f"{self.authz_url}?{q}", {"Cookie": self.cookie, "Accept": "text/html"}))
        return out

    def token_body(self, code: str, verifier: str) -> bytes:
        return urllib.parse.urlencode({"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": self.redirect_uri, "code_verifier": verifier}).encode()

    def token_request(self, code: str, verifier: str) -> bytes:
        return raw_request("POST", self.token_url, self.form_headers(), self.token_body(code, verifier))

    def precheck(self) -> str | None:
        """One round trip with urllib: None if it behaves as the scenarios expect, else the reason."""
        verifier, challenge = self.pairs[0]
        q = urllib.parse.urlencode({"response_type": "code", "client_id": self.client_id,
                                    "redirect_uri": self.redirect_uri, "scope": self.scope, "state": "precheck",
                                    "code_challenge": challenge, "code_challenge_method": "S256"})
        req = urllib.request.Request(f"{self.authz_url}?{q}", headers={"Cookie": self.cookie, "Accept": "text/html"})
        try:
            with urllib.request.build_opener(_NoRedirect).open(req, timeout=30) as r:
                status, loc = r.status, r.headers.get("Location", "")
        except urllib.error.HTTPError as e:
            status, loc = e.code, e.headers.get("Location", "")
        m = CODE_RE.search(loc.encode())
        if status not in (302, 303) or not m:
            return f"pre-check failed: authorize answered HTTP {status} {loc[:120]!r}"
        status, body = http_json(self.token_url, self.token_body(urllib.parse.unquote(m.group(1).decode()), verifier),
                                 self.form_headers(), raw=True, timeout=30)
        if status != 200 or b'"id_token"' not in body:
            return f"pre-check failed: token endpoint HTTP {status} {body[:200]!r}"
        return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


CODE_RE = re.compile(rb"[?&]code=([^&#]+)")


def code_from(resp) -> str:
    """The code in the redirect an authorization endpoint answered (302 from ours and DOT, 303 from
    oidc-provider); anything else fails the iteration."""
    loc = resp.headers.get(b"location", b"")
    if resp.status not in (302, 303) or not loc:
        raise IterationFailed(f"authorize: HTTP {resp.status} {loc[:80]!r} {resp.body[:100]!r}")
    m = CODE_RE.search(loc)
    if not m:
        raise IterationFailed(f"authorize: no code in {loc[:160]!r}")
    return urllib.parse.unquote(m.group(1).decode())


def _token_ok(r) -> None:
    if r.status != 200 or b'"id_token"' not in r.body:
        raise IterationFailed(f"token: HTTP {r.status}: {r.body[:120]!r}")


def mint_codes(flow: CodeFlow, n: int, concurrency: int, cpu_pids: dict, time_cap: float,
               timeout: float = 10.0) -> tuple[collections.deque, dict]:
    """Up to n authorization codes, minted over the signed-in session (no login per code), for at most
    time_cap seconds; each with the verifier of its PKCE pair."""
    reqs = flow.authorize_requests()
    codes: collections.deque = collections.deque()
    counter = [0]

    async def mint(conn):
        if counter[0] >= n:
            raise Exhausted
        i = counter[0] % len(reqs)
        counter[0] += 1
        code = code_from(await conn.request(reqs[i]))
        codes.append((code, flow.pairs[i][0]))

    res = run_python(mint, flow.authz_url, concurrency=concurrency, duration=time_cap, warmup=0, timeout=timeout,
                     cpu_pids=cpu_pids)
    return codes, res


def code_exchange_iteration(flow: CodeFlow, codes: collections.deque):
    async def exchange(conn):
        try:
            code, verifier = codes.popleft()
        except IndexError:
            raise Exhausted from None
        _token_ok(await conn.request(flow.token_request(code, verifier)))
    return exchange


def sso_iteration(flow: CodeFlow):
    reqs = flow.authorize_requests()
    counter = [0]

    async def round_trip(conn):
        i = counter[0] % len(reqs)
        counter[0] += 1
        code = code_from(await conn.request(reqs[i]))
        _token_ok(await conn.request(flow.token_request(code, flow.pairs[i][0])))
    return round_trip
