"""The archive's own write rules, through ``ehr.services.resources_write`` and ``items_resolve`` with no HTTP in
between: versions, If-Match, logical deletes, conditional creates, resends of a business identifier, and
conditional matching scoped to the writer's own source system."""

from __future__ import annotations

import pytest
from django.db import transaction

from ehr.errors import ResourceError
from ehr.models import ConditionalKey, Resource, ResourceVersion, SearchToken
from ehr.selectors import conditional_matches, identifier_matches_many
from ehr.services import WriteItem, items_resolve
from tests.ehr.factories import create, search, source_system, write
from tests.fhirapi.samples import sample

pytestmark = pytest.mark.django_db

IDENTIFIER = "identifier=urn:hosp-a:observation|Obs-1"  # the business identifier of sample("Observation", …, 1)


def refused(source, *items: WriteItem) -> ResourceError:
    """The ResourceError a batch is refused with. The write runs in a savepoint of its own, as a request's
    does: a refused batch dooms the transaction around it, and the test reads on after it."""
    with pytest.raises(ResourceError) as caught, transaction.atomic():
        write(source, *items)
    return caught.value


def observation(who, n: int = 1, **fields) -> dict:
    return {**sample("Observation", f"Patient/{who.uuid}", n), **fields}


def update(resource: Resource, body: dict, **kwargs) -> WriteItem:
    return WriteItem(resource.resource_type, body, method="update", target=resource, **kwargs)


def delete(resource: Resource, **kwargs) -> WriteItem:
    return WriteItem(resource.resource_type, None, method="delete", target=resource, **kwargs)


def reread(resource: Resource) -> Resource:
    return Resource.objects.get(pk=resource.pk)


# --- create, update, delete --------------------------------------------------------------------------------


def test_a_create_is_version_1_of_that_identity_and_source_indexed_at_once(hospital, who):
    item = create(hospital, "Observation", who)

    stored = reread(item.resource)
    assert item.outcome == "created"
    assert (stored.version_id, stored.identity_id, stored.source_id, stored.deleted) == (1, who.pk, hospital.pk, False)
    assert stored.body["id"] == stored.fhir_id and stored.body["meta"]["versionId"] == "1"
    assert (stored.identifier_system, stored.identifier_value, stored.status) == (
        "urn:hosp-a:observation",
        "Obs-1",
        "final",
    )
    assert stored.effective_low == stored.effective_high.replace(microsecond=0)  # a dateTime to the second
    assert set(SearchToken.objects.filter(resource=stored).values_list("param", "code")) == {("code", "718-7")}
    assert not ResourceVersion.objects.filter(resource=stored).exists()  # a create writes no history row


def test_an_update_makes_a_new_version_and_keeps_the_old_one_in_the_history(hospital, who):
    first = create(hospital, "Observation", who).resource
    old_body = reread(first).body

    item = write(hospital, update(first, observation(who, status="amended"), if_match=1))[0]

    stored = reread(first)
    assert (item.outcome, stored.version_id, stored.status, stored.body["meta"]["versionId"]) == (
        "updated",
        2,
        "amended",
        "2",
    )
    kept = ResourceVersion.objects.get(resource=stored)
    assert (kept.version_id, kept.method, kept.body) == (1, "create", old_body)
    assert [r.pk for r in search("Observation", "status=amended").matches] == [stored.pk]
    assert search("Observation", "status=final").matches == []  # the index follows the current version


def test_an_update_that_changes_nothing_makes_no_version(hospital, who):
    first = create(hospital, "Observation", who).resource
    same = {**observation(who), "id": first.fhir_id, "meta": {"versionId": "7", "lastUpdated": "2020-01-01"}}

    item = write(hospital, update(first, same))[0]

    assert item.outcome == "unchanged"
    assert reread(first).version_id == 1
    assert not ResourceVersion.objects.exists()


def test_if_match_on_a_stale_version_is_412_and_nothing_is_written(hospital, who):
    first = create(hospital, "Observation", who).resource
    write(hospital, update(first, observation(who, status="amended"), if_match=1))

    error = refused(hospital, update(reread(first), observation(who, status="cancelled"), if_match=1))

    assert (error.status, error.code) == (412, "conflict")
    assert "version 2" in error.message
    stored = reread(first)
    assert (stored.version_id, stored.status) == (2, "amended")
    assert ResourceVersion.objects.filter(resource=stored).count() == 1


def test_a_delete_is_logical_and_a_second_delete_is_unchanged(hospital, who):
    first = create(hospital, "Observation", who).resource

    item = write(hospital, delete(first, if_match=1))[0]

    stored = reread(first)
    assert (item.outcome, stored.deleted, stored.version_id) == ("deleted", True, 2)
    assert stored.body["valueQuantity"]["value"] == 13.2  # the body stays, for the history
    assert ResourceVersion.objects.get(resource=stored).method == "create"
    assert search("Observation", f"_id={stored.fhir_id}").matches == []
    again = write(hospital, delete(stored))[0]
    assert (again.outcome, reread(first).version_id) == ("unchanged", 2)


# --- conditional creates -----------------------------------------------------------------------------------


def test_a_conditional_create_on_an_identifier_finds_the_existing_resource(hospital, who):
    first = create(hospital, "Observation", who).resource

    item = write(
        hospital,
        WriteItem("Observation", observation(who, status="amended"), identity_id=who.pk, if_none_exist=IDENTIFIER),
    )[0]

    assert (item.outcome, item.resource.pk) == ("existing", first.pk)
    assert reread(first).status == "final"  # found, not changed
    assert Resource.objects.count() == 1


def test_a_conditional_create_on_a_later_identifier_finds_it_through_the_token_rows(hospital, who):
    second_identifier = {"system": "urn:lab", "value": "L-9"}
    body = observation(who)
    body["identifier"] = [*body["identifier"], second_identifier]
    first = write(hospital, WriteItem("Observation", body, identity_id=who.pk))[0].resource

    resend = {**observation(who, 2), "identifier": [{"system": "urn:other", "value": "x"}, second_identifier]}
    item = write(
        hospital, WriteItem("Observation", resend, identity_id=who.pk, if_none_exist="identifier=urn:lab|L-9")
    )[0]

    assert (item.outcome, item.resource.pk) == ("existing", first.pk)


def test_a_conditional_create_on_other_criteria_finds_the_existing_resource_in_any_spelling(hospital, who):
    criteria = "code=http://loinc.org|718-7&status=final"
    body = {**observation(who), "identifier": []}

    first = write(hospital, WriteItem("Observation", body, identity_id=who.pk, if_none_exist=criteria))[0]
    assert first.outcome == "created"
    assert ConditionalKey.objects.filter(resource=first.resource).exists()  # what settles two concurrent ones

    for spelling in (criteria, "status=final&code=http://loinc.org|718-7"):
        again = write(hospital, WriteItem("Observation", body, identity_id=who.pk, if_none_exist=spelling))[0]
        assert (again.outcome, again.resource.pk) == ("existing", first.resource.pk)
    assert Resource.objects.count() == 1


def test_a_conditional_create_matching_two_resources_is_412(hospital, who):
    for n in (1, 2):
        create(hospital, "Observation", who, n)
    item = WriteItem("Observation", observation(who, 3), identity_id=who.pk, if_none_exist="code=718-7")

    error = refused(hospital, item)

    assert error.status == 412
    assert Resource.objects.count() == 2


def test_the_same_conditional_create_twice_in_one_batch_makes_one_resource(hospital, who):
    body = {**observation(who), "identifier": []}
    items = [WriteItem("Observation", body, identity_id=who.pk, if_none_exist="code=718-7") for _ in range(2)]

    first, second = write(hospital, *items)

    assert (first.outcome, second.outcome, second.resource) == ("created", "existing", first.resource)
    assert Resource.objects.count() == 1


# --- a resend of a business identifier ---------------------------------------------------------------------


def test_a_create_resending_a_stored_business_identifier_with_the_same_content_is_the_existing_one(hospital, who):
    first = create(hospital, "Observation", who).resource

    item = create(hospital, "Observation", who)

    assert (item.outcome, item.resource.pk, reread(first).version_id) == ("existing", first.pk, 1)
    assert Resource.objects.count() == 1


def test_a_create_resending_a_stored_business_identifier_with_other_content_is_409_naming_identifier_0(hospital, who):
    first = create(hospital, "Observation", who).resource
    corrected = WriteItem("Observation", observation(who, valueQuantity={"value": 12.1}), identity_id=who.pk)
    in_a_bundle = WriteItem(
        "Observation", observation(who, status="amended"), identity_id=who.pk, path="Bundle.entry[3].resource"
    )

    error = refused(hospital, corrected)
    in_bundle = refused(hospital, in_a_bundle)

    assert (error.status, error.code, error.expression) == (409, "duplicate", "Observation.identifier[0]")
    assert f"Observation/{first.fhir_id}" in error.message
    assert in_bundle.expression == "Bundle.entry[3].resource.identifier[0]"
    assert reread(first).body["valueQuantity"]["value"] == 13.2 and reread(first).version_id == 1


def test_a_create_of_a_deleted_resources_business_identifier_brings_it_back(hospital, who):
    first = create(hospital, "Observation", who).resource
    write(hospital, delete(first))

    item = create(hospital, "Observation", who, status="amended")

    stored = reread(first)
    assert (item.outcome, item.resource.pk) == ("created", first.pk)
    assert (stored.deleted, stored.version_id, stored.status) == (False, 3, "amended")
    assert [v.method for v in ResourceVersion.objects.filter(resource=stored).order_by("version_id")] == [
        "create",
        "delete",
    ]
    assert [r.pk for r in search("Observation", f"_id={first.fhir_id}").matches] == [first.pk]


def test_a_batch_with_one_refused_item_writes_none_of_it(hospital, who):
    create(hospital, "Observation", who)
    new = WriteItem("Condition", sample("Condition", f"Patient/{who.uuid}"), identity_id=who.pk)
    clash = WriteItem("Observation", observation(who, status="amended"), identity_id=who.pk)

    assert refused(hospital, new, clash).status == 409

    assert not Resource.objects.filter(resource_type="Condition").exists()


# --- every source system its own identifier space ----------------------------------------------------------


@pytest.fixture
def two_hospitals(who):
    """Hospitals A and B, each with an Observation of the same business identifier about the same identity."""
    a, b = source_system(), source_system()
    return a, b, create(a, "Observation", who).resource, create(b, "Observation", who).resource


def test_two_sources_each_keep_their_own_resource_of_one_business_identifier(two_hospitals):
    a, b, of_a, of_b = two_hospitals

    assert of_a.pk != of_b.pk
    assert (of_a.source_id, of_b.source_id) == (a.pk, b.pk)


def test_conditional_matches_see_only_the_writers_own_source(two_hospitals):
    a, b, of_a, of_b = two_hospitals

    for criteria in (IDENTIFIER, "code=http://loinc.org|718-7"):
        assert [r.pk for r in conditional_matches("Observation", criteria, source_id=a.pk)] == [of_a.pk]
        assert [r.pk for r in conditional_matches("Observation", criteria, source_id=b.pk)] == [of_b.pk]
        assert {r.pk for r in conditional_matches("Observation", criteria, source_id=None)} == {of_a.pk, of_b.pk}
        assert conditional_matches("Observation", criteria, source_id=source_system().pk) == []


def test_identifier_matches_many_answers_each_pair_as_the_one_at_a_time_lookup(two_hospitals, who):
    a, b, _, _ = two_hospitals
    # A second business identifier (a search token, not the column), a deleted one, one of another source.
    identifiers = [
        {"system": "urn:hosp-a:observation", "value": "Obs-2"},
        {"system": "urn:hosp-a:lab-order", "value": "LO-7"},
    ]
    second = create(a, "Observation", who, 2, identifier=identifiers).resource
    gone = create(a, "Observation", who, 3).resource
    write(a, delete(gone))
    pairs = {
        ("urn:hosp-a:observation", "Obs-1"),
        ("urn:hosp-a:observation", "Obs-2"),
        ("urn:hosp-a:observation", "Obs-3"),
        ("urn:hosp-a:lab-order", "LO-7"),
        ("urn:hosp-a:observation", "nothing"),
    }
    for source_id in (a.pk, b.pk, None):
        many = identifier_matches_many("Observation", pairs, source_id=source_id)
        for system, value in pairs:
            one = conditional_matches("Observation", f"identifier={system}|{value}", source_id=source_id)
            assert [r.pk for r in many[(system, value)]] == [r.pk for r in one], (source_id, value)
    assert [
        r.pk for r in identifier_matches_many("Observation", pairs, source_id=a.pk)[("urn:hosp-a:lab-order", "LO-7")]
    ] == [second.pk]


def test_items_resolve_answers_a_conditional_create_with_the_writers_own_resource_only(two_hospitals, who):
    a, b, of_a, of_b = two_hospitals
    third = source_system()

    def resolved(source) -> WriteItem:
        item = WriteItem("Observation", observation(who), identity_id=who.pk, if_none_exist=IDENTIFIER)
        with transaction.atomic():
            items_resolve([item], source=source)
        return item

    assert (resolved(a).outcome, resolved(a).resource.pk) == ("existing", of_a.pk)
    assert (resolved(b).outcome, resolved(b).resource.pk) == ("existing", of_b.pk)
    newcomer = resolved(third)
    assert (newcomer.outcome, newcomer.method) == ("", "create")
    assert newcomer.fhir_id not in (of_a.fhir_id, of_b.fhir_id)
    # A staff writer (no source) sees both: the criteria match two resources.
    with pytest.raises(ResourceError) as caught, transaction.atomic():
        resolved(None)
    assert caught.value.status == 412


def test_items_resolve_makes_a_resend_an_update_of_the_sources_own_row_only(two_hospitals, who):
    a, _, of_a, _ = two_hospitals
    item = WriteItem("Observation", observation(who), identity_id=who.pk)

    with transaction.atomic():
        items_resolve([item], source=a)

    assert (item.method, item.target.pk, item.fhir_id, item.extra["resend"]) == ("update", of_a.pk, of_a.fhir_id, True)
