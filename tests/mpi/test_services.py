"""MPI services against the database: registration, identifier history, link, unlink, merge, unmerge,
review decisions, re-matching, and the invariants that no operation may break."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from mpi.demographics import Demographics, DemographicsError
from mpi.identifiers import make_resident_id
from mpi.models import DoNotLink, Identifier, Identity, LinkEvent, Person, RematchRun, ReviewItem
from mpi.services import (
    MPIError,
    identity_link,
    identity_register,
    identity_unlink,
    person_merge,
    person_unmerge,
    rematch_start,
    rematch_step,
    review_accept,
    review_merge,
    review_reject,
)

pytestmark = pytest.mark.django_db

RID = make_resident_id("440106", dt.date(1980, 5, 3), 123)
XIAOMING = {"name": "王小明", "sex": "male", "birth_date": "1980-05-03", "phone": "13800138000"}


def reg(authority, local_id, **kw):
    return identity_register(assigning_authority=authority, local_id=local_id, demographics=Demographics(**kw))


def dnl_crossed() -> list[tuple[int, int]]:
    """Do-not-link pairs whose two identities share a person (must always be empty)."""
    return [
        (d.identity_a_id, d.identity_b_id)
        for d in DoNotLink.objects.select_related("identity_a", "identity_b")
        if d.identity_a.person_id == d.identity_b.person_id
    ]


def test_trusted_identity_number_links_across_institutions():
    first = reg("H1", "A1", resident_id=RID, **XIAOMING)
    second = reg("H2", "B7", resident_id=RID, name="王小明", birth_date="1980-05-03")
    assert first.decision == "new" and second.decision == "identifier"
    assert second.person == first.person
    assert Person.objects.get(pk=first.person.pk).resident_id == RID


def test_same_number_with_a_different_name_goes_to_review_not_auto_link():
    first = reg("H1", "A1", resident_id=RID, **XIAOMING)
    other = reg("H2", "B1", resident_id=RID, name="李娜", sex="male", birth_date="1980-05-03")
    assert other.person != first.person and other.decision == "review"
    item = ReviewItem.objects.get(identity=other.identity)
    assert item.candidate == first.person
    assert item.evidence["fields"]["resident_id"]["level"] == "exact"
    assert item.evidence["fields"]["name"]["level"] == "disagree"


def test_probabilistic_link_without_identity_number_stores_evidence():
    first = reg("H1", "A1", **XIAOMING)
    second = reg("C9", "X1", name="王晓明", sex="male", birth_date="1980-03-05", phone="13800138000")
    assert second.decision == "auto" and second.person == first.person
    assert second.identity.link_evidence["fields"]["birth_date"]["level"] == "swap"
    assert second.identity.link_kind == Identity.LinkKind.AUTO


def test_resend_of_the_same_registration_changes_nothing():
    first = reg("H1", "A1", **XIAOMING)
    again = reg("H1", "A1", **XIAOMING)
    assert again.decision == "unchanged" and again.identity.pk == first.identity.pk
    assert Identity.objects.count() == 1 and Person.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_resend_unchanged_waits_for_no_lock_and_a_change_still_takes_it():
    """Every HL7 v2 message carries its patient's PID, nearly always as registered: answered without the
    X holding the row blocks no feed; a
        changed registration still waits for the lock, as it must."""
    import psycopg
    from django.db import OperationalError, connection

    from tests.celery_worker import test_database_url

    if connection.vendor != "postgresql":
        pytest.skip("row locks from a second connection need PostgreSQL")
    first = reg("H1", "A1", **XIAOMING, resident_id=RID)
    holder = psycopg.connect(test_database_url(), autocommit=True)
    try:
        holder.execute("BEGIN")
        holder.execute("SELECT id FROM mpi_identity WHERE id = %s FOR UPDATE", [first.identity.pk])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        try:
            again = reg("H1", "A1", **XIAOMING, resident_id=RID)
            assert again.decision == "unchanged" and again.identity.pk == first.identity.pk
            with pytest.raises(OperationalError):
                reg("H1", "A1", **{**XIAOMING, "phone": "13900139000"}, resident_id=RID)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert reg("H1", "A1", **{**XIAOMING, "phone": "13900139000"}, resident_id=RID).decision != "unchanged"


def test_corrected_identity_number_keeps_identifier_history():
    wrong = make_resident_id("440106", dt.date(1980, 5, 3), 125)
    reg("H1", "A1", resident_id=wrong, **XIAOMING)
    reg("H1", "A1", resident_id=RID, **XIAOMING)
    rows = Identifier.objects.filter(kind="resident_id").order_by("pk")
    assert [(r.value, r.current) for r in rows] == [(wrong, False), (RID, True)]
    assert rows[0].superseded_at is not None
    assert Person.objects.get().resident_id == RID


def test_invalid_number_is_kept_flagged_and_not_trusted():
    bad = RID[:-1] + ("0" if RID[-1] != "0" else "1")
    r = reg("H1", "A1", resident_id=bad, **XIAOMING)
    assert "resident_id_check" in {f["code"] for f in r.flags}
    ident = Identifier.objects.get(identity=r.identity)
    assert (ident.value, ident.trusted, ident.flag) == (bad, False, "resident_id_check")
    assert r.person.resident_id == ""
    # Someone else with the same mistyped number is not linked by it.
    other = reg("H2", "B1", resident_id=bad, name="李娜", sex="female", birth_date="1990-01-01")
    assert other.person != r.person


def test_number_contradicting_birth_date_is_flagged_and_never_silently_links():
    reg("H1", "A1", resident_id=RID, **XIAOMING)
    r = reg("H2", "B1", resident_id=RID, name="王小明", sex="male", birth_date="1985-01-01")
    assert "resident_id_birth_date_conflict" in {f["code"] for f in r.flags}
    assert r.decision in ("review", "new")


@pytest.mark.parametrize(
    "kw",
    [{}, {"sex": "male"}, {"birth_date": "1980-01-01", "phone": "13800138000"}],
)
def test_no_name_and_no_identifier_is_a_clear_error(kw):
    with pytest.raises(DemographicsError, match="needs a name or an identity document"):
        reg("H1", "A1", **kw)
    assert Identity.objects.count() == 0


def test_missing_local_id_is_a_clear_error():
    with pytest.raises(DemographicsError, match="assigning authority and local id"):
        reg("H1", "", **XIAOMING)


def test_future_and_impossible_birth_dates_are_flagged_not_crashed():
    future = reg("H1", "A1", name="王小明", birth_date="2999-01-01")
    impossible = reg("H2", "A1", name="王小明", birth_date="1980-02-30")
    assert "birth_date_future" in {f["code"] for f in future.flags}
    assert "birth_date_invalid" in {f["code"] for f in impossible.flags}
    assert future.identity.birth_date is None and impossible.identity.birth_date is None
    # A name alone never links automatically.
    assert future.person != impossible.person


def test_manual_link_survives_update_and_rematch():
    a = reg("H1", "A1", **XIAOMING)
    b = reg("H2", "B1", name="李娜", sex="female", birth_date="1990-01-01")
    identity_link(identity=b.identity, person=a.person, actor="reviewer", reason="same resident, checked by phone")
    updated = reg("H2", "B1", name="李娜", sex="female", birth_date="1990-01-02")
    assert updated.decision == "kept_manual" and updated.person == a.person
    run = rematch_start(actor="test")
    while run.status != RematchRun.Status.DONE:
        run = rematch_step(run=run, batch_size=1)
    assert Identity.objects.get(pk=b.identity.pk).person_id == a.person.pk
    assert run.counts["manual_kept"] == 1


def test_unlink_creates_new_person_and_do_not_link_that_rematch_respects():
    a = reg("H1", "A1", **XIAOMING)
    b = reg("H2", "B1", **XIAOMING)
    assert a.person == b.person
    identity_unlink(identity=b.identity, actor="reviewer", reason="different people")
    b_identity = Identity.objects.get(pk=b.identity.pk)
    assert b_identity.person_id != a.person.pk
    assert DoNotLink.objects.count() == 1
    assert LinkEvent.objects.filter(kind="unlink").count() == 1
    # A later update or re-match never puts them back together.
    reg("H2", "B1", **{**XIAOMING, "address": "天河路1号"})
    run = rematch_start(actor="test")
    while run.status != RematchRun.Status.DONE:
        run = rematch_step(run=run)
    assert Identity.objects.get(pk=b.identity.pk).person_id != Identity.objects.get(pk=a.identity.pk).person_id
    with pytest.raises(MPIError, match="do-not-link"):
        identity_link(identity=b_identity, person=Identity.objects.get(pk=a.identity.pk).person, actor="x")


def test_unlink_of_only_identity_is_refused():
    a = reg("H1", "A1", **XIAOMING)
    with pytest.raises(MPIError, match="only identity"):
        identity_unlink(identity=a.identity, actor="x")


def test_merge_then_unmerge_restores_exactly():
    a = reg("H1", "A1", resident_id=RID, **XIAOMING)
    b = reg("H2", "B1", name="王小明", sex="male", birth_date="1981-05-03", phone="13900000000")
    b2 = reg("H3", "C1", name="王小明", sex="male", birth_date="1981-05-03", phone="13900000000")
    assert a.person != b.person and b.person == b2.person
    before = {i.pk: (i.person_id, i.link_kind, i.link_score, i.linked_by) for i in Identity.objects.all()}
    golden_before = Person.objects.get(pk=a.person.pk).birth_date
    merge = person_merge(survivor=a.person, duplicate=b.person, actor="hl7:A40", reason="ADT^A40")
    dup = Person.objects.get(pk=b.person.pk)
    assert dup.status == "merged" and dup.merged_into_id == a.person.pk
    assert set(Identity.objects.values_list("person_id", flat=True)) == {a.person.pk}
    person_unmerge(merge=merge, actor="admin", reason="wrong merge")
    after = {i.pk: (i.person_id, i.link_kind, i.link_score, i.linked_by) for i in Identity.objects.all()}
    assert after == before
    assert Person.objects.get(pk=b.person.pk).status == "active"
    assert Person.objects.get(pk=a.person.pk).birth_date == golden_before
    with pytest.raises(MPIError, match="already undone"):
        person_unmerge(merge=merge, actor="admin")
    # The unmerge is a decision: the two sides are never merged again by anyone.
    with pytest.raises(MPIError, match="do-not-link"):
        person_merge(survivor=a.person, duplicate=Person.objects.get(pk=b.person.pk), actor="x")


def test_merge_of_a_merged_person_is_refused():
    a = reg("H1", "A1", **XIAOMING)
    b = reg("H2", "B1", name="李娜", sex="female", birth_date="1990-01-01")
    person_merge(survivor=a.person, duplicate=b.person, actor="x")
    with pytest.raises(MPIError, match="already merged"):
        person_merge(survivor=a.person, duplicate=Person.objects.get(pk=b.person.pk), actor="x")


def test_review_accept_reject_and_merge():
    a = reg("H1", "A1", resident_id=RID, **XIAOMING)
    b = reg("H2", "B1", resident_id=RID, name="李娜", sex="male", birth_date="1980-05-03")
    item = ReviewItem.objects.get(identity=b.identity)
    review_reject(item=item, actor="reviewer", reason="different people, checked")
    assert ReviewItem.objects.get(pk=item.pk).status == "rejected"
    assert DoNotLink.objects.count() == 1
    with pytest.raises(MPIError, match="already decided"):
        review_accept(item=ReviewItem.objects.get(pk=item.pk), actor="reviewer")
    c = reg("H3", "C1", resident_id=RID, name="王建国", sex="male", birth_date="1980-05-03")
    item = ReviewItem.objects.get(identity=c.identity, candidate=a.person)
    review_accept(item=item, actor="reviewer", reason="renamed; checked with the resident")
    assert Identity.objects.get(pk=c.identity.pk).person_id == a.person.pk
    assert Identity.objects.get(pk=c.identity.pk).link_kind == "manual"
    d = reg("H4", "D1", resident_id=RID, name="王国强", sex="male", birth_date="1980-05-03")
    item = ReviewItem.objects.get(identity=d.identity, candidate=a.person)
    review_merge(item=item, actor="reviewer", reason="same resident")
    assert Person.objects.get(pk=d.person.pk).status == "merged"
    assert ReviewItem.objects.get(pk=item.pk).status == "accepted"


def test_rematch_after_threshold_change_moves_automatic_links(settings):
    from mpi.matching import _configured

    a = reg("H1", "A1", **XIAOMING)
    b = reg("H2", "B1", name="王晓明", sex="male", birth_date="1980-05-03", phone="13800138000")
    assert a.person == b.person
    settings.MPI_MATCH_THRESHOLDS = {"auto_link": 200.0, "review": 7.0}
    _configured.cache_clear()
    try:
        call_command("rematch", "--batch-size", "1", stdout=open("/dev/null", "w"))  # noqa: SIM115
        assert Identity.objects.get(pk=a.identity.pk).person_id != Identity.objects.get(pk=b.identity.pk).person_id
        assert ReviewItem.objects.filter(status="open").exists()
    finally:
        _configured.cache_clear()


def test_rematch_resumes_from_last_batch():
    for i in range(5):
        reg("H1", f"A{i}", name=f"测试{i}号", sex="male", birth_date=f"1980-01-0{i + 1}")
    run = rematch_start(actor="test")
    run = rematch_step(run=run, batch_size=2)
    assert run.status == "running" and run.last_identity_id == Identity.objects.order_by("pk")[1].pk
    call_command("rematch", "--resume", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert RematchRun.objects.get(pk=run.pk).status == "done"


def test_rematch_first_rebuilds_profiles_and_keys_so_a_normalisation_change_reaches_the_index():
    from mpi.models import MatchKey

    george = {"sex": "male", "birth_date": "1978-12-18", "phone": "+44 7700 900181"}
    a = reg("H1", "A1", name="GEORGE MICHAEL MCDONALD", **george)
    b = reg("H2", "B1", name="George M. Mc Donald", **george)
    assert a.person == b.person
    # As an older normaliser stored it: "Mc" read as a middle name, which conflicts with Michael.
    stale = Identity.objects.get(pk=b.identity.pk)
    rebuilt = dict(stale.profile)
    stale.profile = {**rebuilt, "middle": ["mc"], "middle_all": ["m", "mc"], "readings": [["george", "mc"]]}
    stale.save(update_fields=["profile"])
    MatchKey.objects.filter(identity=stale).delete()
    Identity.objects.filter(pk=stale.pk).update(person=Person.objects.create(name="George M. Mc Donald"))

    run = rematch_start(actor="test")
    run = rematch_step(run=run, batch_size=10)
    assert run.phase == "links" and run.counts == {"profiles_rebuilt": 1}
    assert Identity.objects.get(pk=stale.pk).profile == rebuilt
    assert MatchKey.objects.filter(identity=stale).exists()
    while run.status != "done":
        run = rematch_step(run=run, batch_size=10)
    assert Identity.objects.get(pk=stale.pk).person_id == Identity.objects.get(pk=a.identity.pk).person_id


# --- the do-not-link invariant under any sequence of operations ------------------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(["register", "unlink", "merge", "unmerge", "link"]), st.integers(0, 5), st.integers(0, 5)
    ),
    min_size=1,
    max_size=12,
)
VARIANTS = [
    XIAOMING,
    {**XIAOMING, "name": "王晓明"},
    {**XIAOMING, "birth_date": "1980-03-05"},
    {"name": "王小红", "sex": "female", "birth_date": "1980-05-03", "phone": "13800138000"},
    {"name": "Wang Xiaoming", "birth_date": "1980-05-03", "phone": "13800138000"},
    {**XIAOMING, "resident_id": RID},
]


class DoNotLinkInvariant(HypothesisTestCase):
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(OPS)
    def test_no_sequence_of_operations_crosses_a_do_not_link_decision(self, ops):
        for op, i, j in ops:
            identities = list(Identity.objects.order_by("pk"))
            persons = list(Person.objects.filter(status="active").order_by("pk"))
            try:
                if op == "register" or not identities:
                    reg(f"H{i}", f"L{j}", **VARIANTS[(i + j) % len(VARIANTS)])
                elif op == "unlink":
                    identity_unlink(identity=identities[i % len(identities)], actor="t")
                elif op == "merge" and len(persons) > 1:
                    person_merge(survivor=persons[i % len(persons)], duplicate=persons[j % len(persons)], actor="t")
                elif op == "unmerge":
                    merge = LinkEvent.objects.filter(kind="merge", undone_by__isnull=True).first()
                    if merge:
                        person_unmerge(merge=merge, actor="t")
                elif op == "link" and persons:
                    identity_link(identity=identities[i % len(identities)], person=persons[j % len(persons)], actor="t")
            except MPIError:
                pass
            assert dnl_crossed() == []
            # Every identity belongs to an active person.
            assert not Identity.objects.exclude(person__status="active").exists()


def test_a_chain_of_similar_records_never_joins_two_residents():
    """Complete linkage: the new record must not conflict with any identity of the person."""
    home = {"sex": "female", "birth_date": "1978-09-22", "phone": "3035557372"}
    k = reg("H1", "K1", name="Katherine Claire Green", **home)
    reg("H2", "K2", name="Katherine Green", **home)
    c = reg("H3", "C1", name="Catherine Patricia Green", **home)
    assert Identity.objects.get(local_id="K2").person_id == k.person.pk
    assert c.person != k.person


def test_exact_name_and_birth_date_without_contact_links_only_when_the_name_is_rare(settings):
    settings.MPI_RARE_NAME_MAX = 3
    first = reg("H1", "A1", name="欧阳娜娜", sex="female", birth_date="1990-02-03", phone="13800000001")
    second = reg("H2", "B1", name="欧阳娜娜", sex="female", birth_date="1990-02-03")
    assert second.decision == "auto" and second.person == first.person
    assert second.identity.link_evidence["rare_name"] is True
    for i in range(4):  # the name becomes common: four more residents of that name, other birth dates
        reg("H9", f"N{i}", name="欧阳娜娜", sex="female", birth_date=f"19{60 + i}-07-0{i + 1}")
    third = reg("H3", "C1", name="欧阳娜娜", sex="female", birth_date="1990-02-03")
    assert third.decision == "review" and third.person != first.person


def test_a_rare_name_with_one_slip_links_with_the_very_birth_date_and_an_address_that_is_only_similar(settings):
    """Febrl's duplicates: a slip in the name and another in the address (a word, a postcode), no phone. Two
    residents whose names are one slip apart, born on one day, on one street, are rarer than a clerk's two
    slips when both spellings are rare in the index; a common name on either side goes to review."""
    settings.MPI_RARE_NAME_MAX = 3
    born = {"birth_date": "1957-09-04"}
    first = reg("H1", "A1", name="Jessica Ryan", address="3 Stonehaven Crescent, Eagleview, Edgecliff 6166", **born)
    second = reg("H2", "B1", name="Jessixca Ryan", address="3 Stonehaven Crescent, Eaglevoiew, Edgecliff 6016", **born)
    assert second.identity.link_evidence["fields"]["name"]["level"] == "typo"
    assert second.identity.link_evidence["fields"]["address"]["level"] == "similar"
    assert second.decision == "auto" and second.person == first.person
    assert second.identity.link_evidence["rare_name"] is True
    # Without the address nothing but the name and birth date is left: review.
    third = reg("H3", "C1", name="Jessicca Ryan", **born)
    assert third.decision == "review" and third.person != first.person
    # The candidate's spelling common in the index (four more of that name, other birth dates): review.
    for i in range(4):
        reg("H9", f"N{i}", name="Mary Smith", birth_date=f"19{60 + i}-07-0{i + 1}")
    reg("H1", "M1", name="Mary Smith", address="12 Oak Street, Riverton 2720", **born)
    slip = reg("H2", "M2", name="Mary Smiht", address="12 Oak Street, Camden Park, Riverton 2720", **born)
    assert slip.identity.link_evidence["fields"]["name"]["level"] == "typo"
    assert slip.decision == "review"


def test_another_family_name_links_at_a_household_phone_not_at_an_institutions():
    home = {"sex": "female", "birth_date": "1986-04-12", "phone": "+44 7700 900431", "address": "12 Mill Lane, Oakham"}
    first = reg("H1", "A1", family_name="Clarke", given_name="Emma", **home)
    married = reg("H2", "B1", family_name="Hughes", given_name="Emma", **home)
    assert married.decision == "auto" and married.person == first.person
    assert married.identity.link_evidence["surname_change"] is True
    # A care home's phone, given by its residents: two Marys born on one day may both live there.
    care = {"phone": "+44 1632 960111", "address": "St Anne's Care Home, 1 Church Road, Riverton"}
    for i in range(8):
        reg("H9", f"R{i}", name=f"Resident{i} Person", birth_date=f"19{30 + i}-01-02", **care)
    mary = reg("H1", "M1", family_name="Clarke", given_name="Mary", sex="female", birth_date="1938-06-01", **care)
    other = reg("H2", "M2", family_name="Hughes", given_name="Mary", sex="female", birth_date="1938-06-01", **care)
    assert other.decision == "review" and other.person != mary.person


def test_a_record_that_links_to_two_persons_bridges_them_and_the_merge_can_be_undone():
    a = reg(
        "H1", "A1", name="Robert Miller", sex="male", birth_date="1995-09-23", address="17 Albert Road, Springfield"
    )
    b = reg("H2", "B1", name="Robert T. Miller", sex="male", birth_date="1995-09-23", phone="+44 7700 960109")
    assert a.person != b.person  # nothing but name and birth date in common: not linked on its own
    c = reg(
        "H3", "C1", name="Robert Miller", sex="male", birth_date="1995-09-23",
        phone="07700 960109", address="17 Albert Rd",
    )  # fmt: skip
    assert c.decision == "auto"
    assert len({i.person_id for i in Identity.objects.all()}) == 1
    merge = LinkEvent.objects.get(kind="merge")
    assert merge.actor == "mpi" and "bridged by H3|C1" in merge.reason
    assert Identity.objects.get(pk=b.identity.pk).link_kind != "manual"  # automatic: a re-match may revisit it
    person_unmerge(merge=merge, actor="admin", reason="two people after all")
    assert len({i.person_id for i in Identity.objects.all()}) == 2


def test_a_bridge_never_merges_persons_that_conflict():
    home = {"sex": "female", "birth_date": "1978-09-22"}
    reg("H1", "K1", name="Katherine Claire Green", address="5 Elm Street, Riverton", **home)
    reg("H2", "C1", name="Catherine Patricia Green", phone="3035557372", **home)
    reg("H3", "X1", name="Katherine Green", phone="3035557372", address="5 Elm Street", **home)
    assert not LinkEvent.objects.filter(kind="merge").exists()


def test_a_twin_using_the_other_twins_number_is_not_linked_to_either():
    birth = dt.date(2017, 3, 7)
    rid_a, rid_b = make_resident_id("440106", birth, 659), make_resident_id("440106", birth, 661)
    home = {"sex": "male", "birth_date": "2017-03-07", "phone": "13378416344"}
    a = reg("H1", "A1", name="崔鹏新", resident_id=rid_a, **home)
    b = reg("H1", "B1", name="崔鹏墨", resident_id=rid_b, **home)
    assert a.person != b.person
    borrowed = reg("H2", "X1", name="崔鹏墨", resident_id=rid_a, **home)
    assert borrowed.decision == "review"
    assert borrowed.person not in (a.person, b.person)
    assert set(ReviewItem.objects.filter(identity=borrowed.identity).values_list("candidate", flat=True)) == {
        a.person.pk,
        b.person.pk,
    }


def test_review_item_is_settled_when_its_identity_joins_the_candidate():
    a = reg("H1", "A1", **XIAOMING)
    b = reg("H2", "B1", name="王小明", sex="male", birth_date="1980-05-03", phone="13900000000")
    item = ReviewItem.objects.filter(identity=b.identity, candidate=a.person).first()
    assert item is not None and b.person != a.person
    reg("H2", "B1", **XIAOMING)  # resent with the phone: now links automatically
    assert Identity.objects.get(pk=b.identity.pk).person_id == a.person.pk
    assert ReviewItem.objects.get(pk=item.pk).status == "obsolete"
    with pytest.raises(MPIError, match="already decided"):
        review_reject(item=item, actor="reviewer", reason="late")
    assert dnl_crossed() == []


def test_rematch_never_splits_a_person_a_reviewer_put_together():
    a = reg("H1", "A1", resident_id=RID, **XIAOMING)
    b = reg("H2", "B1", resident_id=RID, name="王建国", sex="male", birth_date="1980-05-03")
    review_accept(item=ReviewItem.objects.get(identity=b.identity), actor="reviewer", reason="renamed")
    run = rematch_start(actor="test")
    while run.status != RematchRun.Status.DONE:
        run = rematch_step(run=run)
    assert Identity.objects.get(pk=a.identity.pk).person_id == Identity.objects.get(pk=b.identity.pk).person_id


def test_a_bridge_between_persons_that_conflict_with_each_other_links_nothing():
    birth = dt.date(1980, 5, 3)
    r1, r2 = make_resident_id("440106", birth, 121), make_resident_id("440106", birth, 125)
    base = {"name": "王小明", "sex": "male", "birth_date": "1980-05-03"}
    reg("H1", "A1", phone="13800138000", **base)
    reg("H2", "B1", phone="13911111111", address="天河路1号3栋201房", resident_id=r1, **base)
    reg("H3", "C1", phone="13922222222", address="天河路1号3栋201房", resident_id=r2, **base)
    reg("H4", "X1", phone="13800138000", address="天河路1号3栋201房", **base)
    persons = {i.local_id: i.person_id for i in Identity.objects.all()}
    assert persons["B1"] != persons["C1"]
    assert not LinkEvent.objects.filter(kind="merge").exists() or persons["B1"] != persons["C1"]


def test_population_load_keeps_split_names_and_untrusted_cards_and_rejects_repeated_local_ids():
    from mpi.loading import RegisterRecord, population_load

    rid = make_resident_id("440106", dt.date(1990, 1, 2), 7)
    other = make_resident_id("440106", dt.date(1991, 1, 2), 9)
    records = [
        RegisterRecord("P1", Demographics(family_name="王", given_name="小明", resident_id=rid, health_card="N/A")),
        RegisterRecord("P1", Demographics(name="李四", resident_id=other)),
    ]
    result = population_load(records, assigning_authority="POP", actor="test")
    assert result.loaded == 1 and [r.local_id for r in result.rejected] == ["P1"]
    person = Person.objects.get()
    assert person.name == "王小明" and person.health_card == ""
    assert Identifier.objects.get(kind="health_card").trusted is False


def test_unmerge_reopens_the_possible_matches_the_merge_settled():
    a = reg("H1", "A1", resident_id=RID, **XIAOMING)
    b = reg("H2", "B1", resident_id=RID, name="李建国", sex="male", birth_date="1980-05-03")
    c = reg("H3", "C1", name="李建军", sex="male", birth_date="1980-05-03")
    between = ReviewItem.objects.get(identity=b.identity, candidate=a.person)
    third = ReviewItem.objects.get(identity=c.identity, candidate=b.person)
    merge = person_merge(survivor=a.person, duplicate=b.person, actor="admin", reason="same")
    assert ReviewItem.objects.get(pk=third.pk).status == "obsolete"
    person_unmerge(merge=merge, actor="admin", reason="not the same")
    # The third record's question about B is open again; the question between A and B was answered by
    # the unmerge's do-not-link decision and stays closed.
    assert ReviewItem.objects.get(pk=third.pk).status == "open"
    assert ReviewItem.objects.get(pk=between.pk).status == "obsolete"


def test_a_person_left_empty_is_retired_with_a_history_entry():
    a = reg("H1", "A1", **XIAOMING)
    b = reg("H2", "B1", name="李娜", sex="female", birth_date="1990-01-01")
    identity_link(identity=b.identity, person=a.person, actor="reviewer", reason="checked")
    retired = Person.objects.get(pk=b.person.pk)
    assert retired.status == "merged" and retired.merged_into_id == a.person.pk
    assert LinkEvent.objects.filter(kind="rematch", other_person=retired, detail__retired=retired.pk).exists()


def test_a_record_without_birth_date_links_by_whole_name_and_contact_unless_two_persons_fit():
    home = {"sex": "male", "phone": "+44 7700 944604", "address": "133 High Street, Oakham"}
    father = reg("H1", "F1", name="James Robert McDonald", birth_date="1959-08-11", **home)
    undated = reg("H2", "U1", name="MCDONALD, James Robert", **home)
    assert undated.decision == "auto" and undated.person == father.person
    assert undated.identity.link_evidence["without_birth_date"] is True
    # The son of the same name, born later, does not join through the undated record.
    son = reg("H3", "S1", name="James Robert McDonald", birth_date="1988-02-14", **home)
    assert son.person != father.person
    # Now two persons of that name live there: a record without a birth date cannot choose.
    again = reg("H4", "U2", name="James Robert McDonald", **home)
    assert again.decision == "review" and again.person not in (father.person, son.person)


def test_a_person_is_judged_on_the_identity_that_corroborates_the_record_not_only_the_highest_score():
    home = {"sex": "male", "phone": "+44 7700 937417", "address": "163 Bridge Ln, Riverton"}
    first = reg("H1", "A1", name="Robert Steven Clark", birth_date="1956-10-28", **home)
    second = reg("H2", "B1", name="Robert Clark", birth_date="1956-10-28", **home)
    assert second.person == first.person
    # Without a birth date only the identity named in full alike corroborates; it scores no higher.
    undated = reg("H3", "C1", name="Robert Clark", **home)
    assert undated.decision == "auto" and undated.person == first.person


def test_one_authority_registering_a_resembling_name_on_one_day_is_reviewed_not_linked():
    # Twins born at one hospital: one birth date, one phone, names that sound alike.
    home = {"sex": "female", "birth_date": "2013-10-16", "phone": "+44 7700 935421"}
    kathryn = reg("H1", "A1", name="Kathryn Miller", **home)
    katherine = reg("H1", "A2", name="Katherine Miller", **home)
    assert katherine.decision == "review" and katherine.person != kathryn.person
    item = ReviewItem.objects.get(identity=katherine.identity)
    assert item.candidate == kathryn.person and item.evidence["same_authority"] is True
    # The same name again at that hospital (a registrar's duplicate) still links.
    again = reg("H1", "A3", name="MILLER, Kathryn", **home)
    assert again.decision == "auto" and again.person == kathryn.person
    # Another hospital's Katherine links to Katherine, and does not bridge the two girls into one person.
    elsewhere = reg("H2", "B1", name="Katherine Miller", **home)
    assert elsewhere.person == katherine.person
    assert Person.objects.get(pk=kathryn.person.pk).status == Person.Status.ACTIVE
    assert Identity.objects.filter(person=kathryn.person).count() == 2
    # A registrar's duplicate under a diminutive or with a slip in the name still links at that hospital.
    thomas = reg("H1", "T1", name="Thomas Novak", sex="male", birth_date="1965-03-07", phone="(503) 555-1100")
    tommy = reg("H1", "T2", name="Tommy Novak", sex="male", birth_date="1965-03-07", phone="(503) 555-1100")
    slip = reg("H1", "T3", name="Thomas Novac", sex="male", birth_date="1965-03-07", phone="(503) 555-1100")
    assert tommy.person == thomas.person and slip.person == thomas.person
    # At another hospital, the resemblance alone still links (no record of it says otherwise).
    alone = reg("H3", "C1", name="Cathryn Lowe", sex="female", birth_date="1990-02-01", phone="+44 7700 900001")
    spelled = reg("H4", "D1", name="Kathryn Lowe", sex="female", birth_date="1990-02-01", phone="+44 7700 900001")
    assert spelled.decision == "auto" and spelled.person == alone.person


def test_the_one_hospital_twin_guard_holds_against_pooled_contacts_and_yields_to_the_exact_name_and_reviewers():
    # The first twin's birth record has no phone; a clinic's undated record of her brings the phone.
    reg("H1", "A1", name="Kathryn Miller", sex="female", birth_date="2013-10-16", address="1 High Street, Leeds")
    clinic = reg(
        "H2", "B1", name="Kathryn Miller", sex="female", phone="+44 7700 935421", address="1 High Street, Leeds"
    )
    twin = reg("H1", "A2", name="Katherine Miller", sex="female", birth_date="2013-10-16", phone="+44 7700 935421")
    assert twin.decision == "review" and twin.person != clinic.person
    # A reviewer says the two spellings are one girl: later records of that hospital in either spelling link.
    review_accept(item=ReviewItem.objects.get(identity=twin.identity, candidate=clinic.person), actor="reviewer")
    home = {"sex": "female", "birth_date": "2013-10-16", "phone": "+44 7700 935421"}
    assert reg("H1", "A3", name="Kathryn Miller", **home).person == clinic.person
    assert reg("H1", "A4", name="Katherine Miller", **home).person == clinic.person


def test_the_whole_name_stands_in_for_a_contact_only_when_the_name_is_uncommon(settings):
    settings.MPI_RARE_NAME_MAX = 1  # uncommon: at most 4 identities sounding like the name
    first = reg("H1", "A1", name="Mary Ann Smith", sex="female", birth_date="1971-04-02", phone="+44 7700 900111")
    second = reg("H2", "B1", name="Mary Ann Smith", sex="female", birth_date="1971-04-02")
    assert second.decision == "auto" and second.person == first.person
    assert second.identity.link_evidence.get("whole_name") is True
    for i in range(4):  # four more Mary Smiths, other days: the name is common now
        reg("H9", f"N{i}", name="Mary Smith", sex="female", birth_date=f"19{60 + i}-07-0{i + 1}")
    third = reg("H3", "C1", name="Mary Ann Smith", sex="female", birth_date="1971-04-02")
    assert third.decision == "review" and third.person != first.person


def test_twins_with_one_placeholder_name_at_one_hospital_are_not_linked():
    mother = {"sex": "female", "birth_date": "2024-05-05", "phone": "+44 7700 900222", "address": "9 Elm Street"}
    card = {"health_card": "HC20240505001"}  # the mother's card, on both
    first = reg("H1", "N1", name="BABY GIRL THOMPSON", **mother, **card)
    second = reg("H1", "N2", name="BABY GIRL THOMPSON", **mother, **card)
    assert second.person != first.person and second.decision == "review"


def test_two_families_that_agree_on_one_reading_of_the_name_are_not_linked():
    born = {"sex": "female", "birth_date": "1988-12-01"}
    first = reg("H1", "A1", name="Maria Guadalupe Hernandez", phone="+44 7700 900333", **born)
    second = reg("H2", "B1", name="Maria Guadalupe Lopez", phone="+44 7700 900444", **born)
    assert second.person != first.person and second.decision != "auto"
