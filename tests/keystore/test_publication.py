"""Publication before use, between processes: two key stores sharing one ``keys/`` directory, each
with its own reload timer (two nodes or two workers), on one simulated clock. At no instant may one
process sign with a ``kid`` the other does not publish, nor stop publishing a ``kid`` the other signed
for a token still valid: a relying party that refetches the JWKS on an unknown ``kid`` (OIDC Core
§10.1.1, RFC 7517 §4.5) can land on either process."""
from __future__ import annotations

import json

import pytest

from idp.keystore import signing

RELOAD = 2        # seconds, IDP_KEYS_RELOAD_INTERVAL in production
GRACE = 10        # seconds a retired key stays published (token lifetime + leeway)
TOKEN_TTL = 9     # the tokens' lifetime; GRACE - TOKEN_TTL is the leeway, larger than the skew
SKEW = 0.5        # process B's wall clock runs ahead of A's (nodes kept in step by NTP)
STEP = 0.1


class SimulatedTime:
    def __init__(self, start: float):
        self.t = start


def _stores(keys_dir, sim):
    a = signing.KeyStore(keys_dir, None, GRACE, RELOAD, clock=lambda: sim.t, timer=lambda: sim.t)
    sim.t += 1.3  # B starts later: its reload checks fall at other moments than A's
    b = signing.KeyStore(keys_dir, None, GRACE, RELOAD, clock=lambda: sim.t + SKEW, timer=lambda: 7000 + sim.t)
    return {"A": a, "B": b}


def _simulate(keys_dir, publish_ahead: int, *, revoke_old=False):
    """Run both processes through a rotation; return the violations seen and what each signed."""
    t0 = 1_700_000_000
    signing.create_missing(keys_dir, None, now=t0 - 100)
    sim = SimulatedTime(t0)
    stores = _stores(keys_dir, sim)
    rotate_at = t0 + 3.05
    rotated = None
    signed_at: dict[str, float] = {}  # kid → the last (true) time a token was signed with it
    signers: dict[str, set[str]] = {"A": set(), "B": set()}
    violations = []
    while sim.t < t0 + 40:
        if rotated is None and sim.t >= rotate_at:
            rotated = signing.rotate(keys_dir, None, publish_ahead=publish_ahead, revoke_old=revoke_old, now=sim.t)
        for name, store in stores.items():
            for alg in signing.ALGS:
                kid = store.signing_key(alg).kid
                signed_at[kid] = sim.t
                signers[name].add(kid)
        for name, store in stores.items():
            published = {k["kid"] for k in json.loads(store.jwks_json())["keys"]}
            needed = {kid for kid, at in signed_at.items() if sim.t - at < TOKEN_TTL}
            if revoke_old:
                needed -= {k["kid"] for k in rotated["revoked"]} if rotated else set()
            for kid in needed - published:
                violations.append((round(sim.t - t0, 1), name, kid))
        sim.t += STEP
    return rotated, signers, violations


def test_no_instant_where_a_signed_kid_is_unpublished(tmp_path):
    """With IDP_KEYS_PUBLISH_AHEAD = 2 x reload interval + 1: zero instants where a process signs with,
    or a live token carries, a kid the other process does not publish; both processes switch keys."""
    rotated, signers, violations = _simulate(tmp_path, 2 * RELOAD + 1)
    assert violations == []
    new = {k["kid"] for k in rotated["created"]}
    old = {k["kid"] for k in rotated["retired"]}
    for name in ("A", "B"):  # both signed with the old keys, then with the new ones
        assert new <= signers[name] and old <= signers[name]


def test_signing_at_once_has_the_failure_window(tmp_path):
    """The control: a new key that signs at once (the old contract) is signed with by one process while
    the other, until its next reload, does not publish it — the window the delay closes."""
    rotated, _, violations = _simulate(tmp_path, 0)
    new = {k["kid"] for k in rotated["created"]}
    assert violations and {kid for *_, kid in violations} <= new
    # B's reload falls first (3.3 s), so B signs with the new key while A, until its reload at 4 s,
    # does not publish it.
    assert {name for _, name, _ in violations} == {"A"}
    assert all(3.05 < at < 3.05 + RELOAD for at, *_ in violations)


def test_revoke_old_withdraws_at_once_and_publishes_the_new_key(tmp_path):
    """``--revoke-old``: the revoked keys may disappear (that is the point); the new key is still never
    signed with where it is unpublished except during the one reload interval the emergency accepts."""
    rotated, signers, violations = _simulate(tmp_path, 0, revoke_old=True)
    assert rotated["revoked"] and all(v[0] <= 3.05 + RELOAD + STEP for v in violations)


def test_switch_needs_no_reload(tmp_path):
    """The switch to a pending key happens at ``not_before`` from the loaded index and the clock alone."""
    sim = SimulatedTime(1_700_000_000)
    signing.create_missing(tmp_path, None, now=sim.t - 100)
    store = signing.KeyStore(tmp_path, None, GRACE, 10**9, clock=lambda: sim.t, timer=lambda: sim.t)
    rotated = signing.rotate(tmp_path, None, ["ES256"], publish_ahead=5, now=sim.t)
    store.reload(force=True)
    loads = []
    store._load = lambda path: loads.append(path)  # any further load would be seen
    old = store.signing_key("ES256").kid
    sim.t += 5
    new = store.signing_key("ES256").kid
    assert old == rotated["retired"][0]["kid"] and new == rotated["created"][0]["kid"] and loads == []


def test_a_second_rotation_while_one_is_pending_chains(tmp_path):
    """Rotating again before the pending key signs: the pending key signs until the newest takes over."""
    t = 1_700_000_000
    signing.create_missing(tmp_path, None, now=t - 100)
    first = signing.rotate(tmp_path, None, ["ES256"], publish_ahead=5, now=t)
    second = signing.rotate(tmp_path, None, ["ES256"], publish_ahead=5, now=t + 2)
    k0, k1, k2 = first["retired"][0]["kid"], first["created"][0]["kid"], second["created"][0]["kid"]
    sim = SimulatedTime(t + 2)
    store = signing.KeyStore(tmp_path, None, GRACE, 0, clock=lambda: sim.t)
    for sim.t, kid in ((t + 4, k0), (t + 5, k1), (t + 6, k1), (t + 7, k2)):
        assert store.signing_key("ES256").kid == kid, sim.t
    assert {k["kid"] for k in json.loads(store.jwks_json())["keys"] if k["alg"] == "ES256"} == {k0, k1, k2}


@pytest.mark.parametrize("field", ["not_before", "revoked_at"])
def test_index_written_before_publication_ahead_is_read(tmp_path, field):
    """keys.json files written before ``not_before``/``revoked_at`` existed: a key signed from creation."""
    signing.create_missing(tmp_path, None)
    path = tmp_path / "signing" / "keys.json"
    index = json.loads(path.read_text())
    for k in index["keys"]:
        del k[field]
    path.write_text(json.dumps(index))
    store = signing.KeyStore(tmp_path, None, GRACE, 0)
    assert {store.signing_key(alg).kid for alg in signing.ALGS} == {k["kid"] for k in index["keys"]}
