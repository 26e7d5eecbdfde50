"""Businesses and representation: registration by a verified legal representative, agents authorized
for a period, confirmed by the agent, revoked by the representative; acting for a business."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from idp.accounts import representation as reps
from idp.accounts.businesses import register_business
from idp.accounts.models import Business, Representation
from idp.db import db, transaction, utcnow
from idp.errors import Conflict, DomainError, NotFound
from tests.accounts.support import HUAWEI, TENCENT, audit_actions, citizen


def test_register_business_makes_the_representative_its_legal_representative(boss, business):
    assert business.uscc == TENCENT and business.representative_id == boss.id
    assert len(business.public_id) >= 20  # random, not a counter
    [(rep, b)] = reps.usable_representations(boss)
    assert (rep.role, rep.status, b.id) == ("legal_representative", "active", business.id)
    assert "business.registered" in audit_actions()


def test_public_ids_are_random(boss):
    a = register_business(representative=boss, uscc=TENCENT, name="A")
    b = register_business(representative=boss, uscc=HUAWEI, name="B")
    assert a.public_id != b.public_id and not a.public_id.isdigit()


def test_representative_must_be_real_name_verified(app):
    """Only a level-2 (real-name verified) citizen may register a business; the message says why."""
    plain = citizen("plain")
    with pytest.raises(DomainError, match="real name has been verified") as exc:
        register_business(representative=plain, uscc=TENCENT, name="腾讯")
    assert exc.value.status == 403
    assert db.session.execute(select(Business)).first() is None


def test_disabled_representative_is_refused(boss):
    with transaction():
        boss.status = "disabled"
    with pytest.raises(DomainError, match="active account"):
        register_business(representative=boss, uscc=TENCENT, name="腾讯")


def test_one_business_per_uscc(boss, business):
    other = citizen("other", verified=True)
    with pytest.raises(Conflict, match="already registered"):
        register_business(representative=other, uscc=TENCENT.lower(), name="冒名")
    assert db.session.execute(select(Business)).scalars().all() == [business]


@pytest.mark.parametrize("uscc, words", [
    ("9144030071526726XA", "check character should be G, not A"),
    ("91440300715267", "18 characters"),
    ("9144030071526726IG", "contains I"),
])
def test_bad_uscc_is_refused_with_the_reason(boss, uscc, words):
    with pytest.raises(DomainError, match=words):
        register_business(representative=boss, uscc=uscc, name="腾讯")


def test_name_is_required(boss):
    with pytest.raises(DomainError, match="name"):
        register_business(representative=boss, uscc=TENCENT, name="   ")


# --- agents ------------------------------------------------------------------------------------------

def test_agent_is_pending_until_confirmed(boss, clerk, business):
    rep = reps.authorize_agent(business=business, username="clerk", by=boss)
    assert rep.status == "pending" and rep.granted_by_id == boss.id
    assert reps.usable_representations(clerk) == []  # not usable before the agent confirms
    assert [r.id for r, _b in reps.pending_for(clerk)] == [rep.id]
    reps.confirm(rep.id, clerk)
    [(r, b)] = reps.usable_representations(clerk)
    assert (r.id, r.role, b.id) == (rep.id, "agent", business.id) and r.confirmed_at is not None
    assert reps.pending_for(clerk) == []
    assert audit_actions()[-2:] == ["representation.granted", "representation.confirmed"]


def test_agent_may_decline(boss, clerk, business):
    rep = reps.authorize_agent(business=business, username="clerk", by=boss)
    reps.decline(rep.id, clerk)
    assert rep.status == "declined" and reps.usable_representations(clerk) == []
    with pytest.raises(Conflict):
        reps.confirm(rep.id, clerk)  # an answer is final
    assert audit_actions()[-1] == "representation.declined"


def test_only_the_agent_can_answer(boss, clerk, business):
    rep = reps.authorize_agent(business=business, username="clerk", by=boss)
    stranger = citizen("stranger")
    for answer in (reps.confirm, reps.decline):
        with pytest.raises(NotFound):
            answer(rep.id, stranger)
    with pytest.raises(NotFound):
        reps.confirm(rep.id, boss)
    assert rep.status == "pending"


def test_only_the_legal_representative_can_authorize_and_revoke(boss, clerk, business):
    stranger = citizen("stranger", verified=True)
    with pytest.raises(DomainError, match="only the legal representative") as exc:
        reps.authorize_agent(business=business, username="clerk", by=stranger)
    assert exc.value.status == 403
    rep = reps.authorize_agent(business=business, username="clerk", by=boss)
    reps.confirm(rep.id, clerk)
    with pytest.raises(NotFound):
        reps.revoke(rep.id, stranger)
    with pytest.raises(NotFound):
        reps.revoke(rep.id, clerk)  # an agent cannot authorize or revoke for the business
    with pytest.raises(DomainError, match="only the legal representative"):
        reps.authorize_agent(business=business, username="stranger", by=clerk)


def test_revoked_agent_can_no_longer_act(boss, clerk, business):
    rep = reps.authorize_agent(business=business, username="clerk", by=boss)
    reps.confirm(rep.id, clerk)
    assert reps.org_claim(rep.id, clerk) is not None
    reps.revoke(rep.id, boss)
    assert rep.status == "revoked" and rep.revoked_at is not None
    assert reps.usable_representations(clerk) == [] and reps.org_claim(rep.id, clerk) is None
    with pytest.raises(Conflict):
        reps.revoke(rep.id, boss)
    assert audit_actions()[-1] == "representation.revoked"


def test_a_second_revocation_racing_the_first_changes_and_records_nothing(boss, clerk, business):
    """Two clicks (two tabs): the second read the authorization as active before the first revoked
    it. Its guarded UPDATE finds it ended: 409, no second ``representation.revoked`` event."""
    from sqlalchemy import update

    rep = reps.authorize_agent(business=business, username="clerk", by=boss)
    reps.confirm(rep.id, clerk)
    assert rep.status == "active"  # this request's copy
    db.session.execute(update(Representation).where(Representation.id == rep.id)
                       .values(status="revoked", revoked_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()  # the other request's revocation, behind this one's back
    from sqlalchemy.orm.attributes import set_committed_value

    set_committed_value(rep, "status", "active")  # this request read it before that: its copy is stale
    before = audit_actions().count("representation.revoked")
    with pytest.raises(Conflict):
        reps.revoke(rep.id, boss)
    assert audit_actions().count("representation.revoked") == before


def test_pending_authorization_can_be_revoked(boss, clerk, business):
    rep = reps.authorize_agent(business=business, username="clerk", by=boss)
    reps.revoke(rep.id, boss)
    assert reps.pending_for(clerk) == []
    with pytest.raises(Conflict):
        reps.confirm(rep.id, clerk)


def test_validity_period(boss, clerk, business):
    """An authorization starting tomorrow is not usable today; one past its end is not usable."""
    tomorrow = date.today() + timedelta(days=2)
    rep = reps.authorize_agent(business=business, username="clerk", by=boss,
                               valid_from=reps.start_of_day(tomorrow), valid_until=reps.end_of_day(tomorrow))
    reps.confirm(rep.id, clerk)
    assert reps.state(rep) == "not_yet_valid" and reps.usable_representations(clerk) == []
    with transaction():
        rep.valid_from = utcnow() - timedelta(days=2)
        rep.valid_until = utcnow() - timedelta(seconds=1)
    assert reps.state(rep) == "expired"
    assert reps.usable_representations(clerk) == [] and reps.org_claim(rep.id, clerk) is None
    # once over, the representative may authorize the same person again
    again = reps.authorize_agent(business=business, username="clerk", by=boss)
    assert again.status == "pending"


def test_an_expired_authorization_cannot_be_confirmed(boss, clerk, business):
    rep = reps.authorize_agent(business=business, username="clerk", by=boss,
                               valid_until=utcnow() + timedelta(hours=1))
    with transaction():
        rep.valid_until = utcnow() - timedelta(seconds=1)
    assert reps.pending_for(clerk) == []
    with pytest.raises(DomainError, match="expired"):
        reps.confirm(rep.id, clerk)
    assert rep.status == "pending"


def test_end_must_follow_start_and_be_in_the_future(boss, clerk, business):
    with pytest.raises(DomainError, match="after its start"):
        reps.authorize_agent(business=business, username="clerk", by=boss, valid_until=utcnow() - timedelta(days=1))
    start = utcnow() + timedelta(days=10)
    with pytest.raises(DomainError, match="after its start"):
        reps.authorize_agent(business=business, username="clerk", by=boss, valid_from=start,
                             valid_until=start - timedelta(days=1))


def test_no_duplicate_authorizations(boss, clerk, business):
    rep = reps.authorize_agent(business=business, username="clerk", by=boss)
    with pytest.raises(Conflict):
        reps.authorize_agent(business=business, username="clerk", by=boss)
    reps.confirm(rep.id, clerk)
    with pytest.raises(Conflict):
        reps.authorize_agent(business=business, username="clerk", by=boss)


def test_unknown_or_disabled_agent_and_the_representative_himself(boss, clerk, business):
    with pytest.raises(DomainError, match="no active account"):
        reps.authorize_agent(business=business, username="nobody", by=boss)
    with transaction():
        clerk.status = "disabled"
    with pytest.raises(DomainError, match="no active account"):
        reps.authorize_agent(business=business, username="clerk", by=boss)
    with pytest.raises(DomainError, match="already acts"):
        reps.authorize_agent(business=business, username="boss", by=boss)


def test_operator_grant_has_no_granting_person(clerk, business):
    rep = reps.authorize_agent(business=business, username="clerk", by=None, actor="cli")
    assert rep.granted_by_id is None and rep.status == "pending"


def test_validity_days_are_chinese_calendar_days():
    """An authorization "until 2026-12-31" lasts until midnight in China (UTC+8)."""
    end = reps.end_of_day(date(2026, 12, 31))
    assert end.isoformat() == "2026-12-31T16:00:00"
    assert reps.last_day(end) == date(2026, 12, 31)
    assert reps.first_day(reps.start_of_day(date(2026, 1, 1))) == date(2026, 1, 1)


def test_inactive_business_stops_every_representation(boss, clerk, business):
    rep = reps.authorize_agent(business=business, username="clerk", by=boss)
    reps.confirm(rep.id, clerk)
    with transaction():
        business.status = "dissolved"
    assert reps.usable_representations(boss) == [] and reps.usable_representations(clerk) == []
    assert reps.org_claim(rep.id, clerk) is None


# --- acting and the org claim -------------------------------------------------------------------------

class _Session:
    """Stands in for an SsoSession (person, sid, acting_representation_id)."""

    def __init__(self, person):
        self.person, self.sid, self.acting_representation_id = person, "sid-1", None


def test_act_as_business_and_back(boss, business):
    s = _Session(boss)
    rep = reps.act_as(s, business.public_id)
    assert s.acting_representation_id == rep.id
    assert reps.org_claim(s.acting_representation_id, boss) == {
        "id": business.public_id, "name": "腾讯科技（深圳）有限公司", "uscc": TENCENT, "role": "legal_representative"}
    assert reps.act_as(s, None) is None and s.acting_representation_id is None
    assert audit_actions()[-2:] == ["representation.acting_changed", "representation.acting_changed"]


def test_cannot_act_for_a_business_one_does_not_represent(boss, clerk, business):
    with pytest.raises(DomainError, match="cannot act") as exc:
        reps.act_as(_Session(clerk), business.public_id)
    assert exc.value.status == 403
    with pytest.raises(DomainError):
        reps.act_as(_Session(clerk), "no-such-business")


def test_org_claim_belongs_to_its_person(boss, clerk, business):
    """A representation id carried in a token is re-checked against the token's person."""
    [(rep, _b)] = reps.usable_representations(boss)
    assert reps.org_claim(rep.id, clerk) is None
    assert reps.org_claim(None, boss) is None and reps.org_claim(999999, boss) is None


def test_audit_details_hold_no_personal_data(boss, clerk, business):
    from idp.audit.models import AuditEvent

    rep = reps.authorize_agent(business=business, username="clerk", by=boss)
    reps.confirm(rep.id, clerk)
    text = " ".join(str(e.detail) for e in db.session.execute(select(AuditEvent)).scalars())
    for personal in ("马化腾", "李经办", "clerk", "boss"):
        assert personal not in text


def test_representation_rows(boss, clerk, business):
    rep = reps.authorize_agent(business=business, username="clerk", by=boss)
    rows = db.session.execute(select(Representation).order_by(Representation.id)).scalars().all()
    assert [(r.role, r.status) for r in rows] == [("legal_representative", "active"), ("agent", "pending")]
    assert rows[1].id == rep.id
