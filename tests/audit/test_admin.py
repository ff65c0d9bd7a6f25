"""The admin's reads of resident records are access events (door admin), and the access events are read — never
added, changed or deleted, by anyone — in the admin, searchable by resident and exportable as FHIR AuditEvents."""

from __future__ import annotations

import json

import pytest
from django.db import DatabaseError
from django.urls import reverse
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from ehr.models import Resource, Submission
from emr.models import DocumentEntry
from healthplatform.audit.admin import person_paths
from healthplatform.audit.models import AccessEvent
from mpi.models import Identity, Person, ReviewItem
from tests.audit.conftest import fhir_get
from tests.mpi.test_admin import RID, reg

pytestmark = pytest.mark.django_db


def _recorded(events) -> list[tuple[int, str, str]]:
    return [(e.person_id, e.what, e.action) for e in events.new()]


def test_a_detail_page_records_the_resident_it_shows(region, events, staff):
    wang = region.wang.pk
    identity = Identity.objects.get(uuid=region.a.patient_id)
    fact = Resource.objects.get(fhir_id=region.a.ids["Observation"])
    document = DocumentEntry.objects.get(uuid=region.a.document_id)
    pages = [
        ("admin:mpi_person_change", region.wang.pk, "admin person"),
        ("admin:mpi_identity_change", identity.pk, "admin identity"),
        ("admin:ehr_resource_change", fact.pk, "admin clinical-resource"),
        ("admin:emr_documententry_change", document.pk, "admin document"),
    ]
    for name, pk, what in pages:
        assert staff.get(reverse(name, args=[pk])).status_code == 200
        [event] = events.new()
        assert (event.person_id, event.what, event.action, event.door) == (wang, what, "read", "admin")
        assert (event.actor, event.institution_id, event.source_id) == ("auditor", None, None)
        assert event.query == f"GET {reverse(name, args=[pk])}" and event.client_address == "127.0.0.1"


def test_a_submission_page_records_the_residents_of_what_it_wrote(region, events, staff):
    submission = Resource.objects.get(fhir_id=region.b.ids["Observation"]).submission
    assert staff.get(reverse("admin:ehr_submission_change", args=[submission.pk])).status_code == 200
    assert _recorded(events) == [(region.wang.pk, "admin submission", "read")]


def test_a_list_page_records_each_resident_on_that_page_and_no_other(region, events, staff):
    response = staff.get(reverse("admin:mpi_person_changelist"))
    assert response.status_code == 200
    assert sorted(_recorded(events)) == sorted(
        [(region.wang.pk, "admin person list", "search"), (region.zhao.person.pk, "admin person list", "search")]
    )
    # A search narrows the page, and the audit with it.
    assert staff.get(reverse("admin:mpi_identity_changelist"), {"q": "HOSP-B-2"}).status_code == 200
    assert _recorded(events) == [(region.zhao.person.pk, "admin identity list", "search")]
    assert staff.get(reverse("admin:ehr_resource_changelist"), {"q": "nothing-like-this"}).status_code == 200
    assert events.new() == []


def test_an_actions_confirmation_page_records_the_residents_it_was_given(region, events, staff):
    persons = [region.wang.pk, region.zhao.person.pk]
    response = staff.post(
        reverse("admin:mpi_person_changelist"), {"action": "merge_selected", "_selected_action": persons}
    )
    assert response.status_code == 200  # the merge's confirmation, naming both
    assert sorted(e.person_id for e in events.new()) == sorted(persons)


def test_a_possible_match_page_records_both_residents_it_compares(db, events, staff):
    first = reg("H1", "A1", name="王小明", sex="male", birth_date="1980-05-03", resident_id=RID)
    second = reg("H2", "B1", name="李建国", sex="male", birth_date="1980-05-03", resident_id=RID)
    item = ReviewItem.objects.get(identity=second.identity)
    assert staff.get(reverse("admin:mpi_reviewitem_review", args=[item.pk])).status_code == 200
    assert sorted(e.person_id for e in events.new()) == sorted({first.person.pk, second.person.pk})


def test_every_store_page_that_shows_records_knows_whose_they_are():
    # From the model: a person's own key, a foreign key to a person, or through a foreign key to an identity.
    assert person_paths(Person) == ["pk"]
    assert person_paths(Identity) == ["person_id"]
    assert person_paths(Resource) == ["identity__person_id"]
    assert person_paths(DocumentEntry) == ["identity__person_id"]
    assert sorted(person_paths(ReviewItem)) == ["candidate_id", "identity__person_id"]
    assert person_paths(Submission) == []  # its page says so itself (SubmissionAdmin.record_persons)


def test_an_admin_page_the_audit_cannot_record_is_not_shown(region, staff, audit_unwritable):
    with pytest.raises(DatabaseError):
        staff.get(reverse("admin:mpi_person_change", args=[region.wang.pk]))


# --- the audit's own pages ----------------------------------------------------------------------------------


@pytest.fixture
def accesses(region, events):
    """Hospital A's and hospital B's reads of 王小明's Observation, and B's of 赵敏's."""
    fhir_get(region.a.client, f"Observation/{region.a.ids['Observation']}")
    fhir_get(region.b.client, f"Observation/{region.a.ids['Observation']}")
    fhir_get(region.b.client, f"Observation/{region.zhao.observation_id}")
    return events.new()


def test_the_audit_is_listed_with_its_filters_and_shows_residents_by_golden_id_only(region, accesses, staff):
    url = reverse("admin:audit_accessevent_changelist")
    page = staff.get(url)
    assert page.status_code == 200
    content = page.content.decode()
    assert str(region.wang.uuid) in content and str(region.zhao.person.uuid) in content
    assert "王小明" not in content and "赵敏" not in content
    for query in ({"door__exact": "fhir"}, {"break_glass__exact": "1"}, {"at__year": "2026"}):
        assert staff.get(url, query).status_code == 200
    detail = staff.get(reverse("admin:audit_accessevent_change", args=[accesses[0].pk]))
    assert detail.status_code == 200 and "Observation read" in detail.content.decode()


def test_the_audit_is_searched_by_resident_golden_or_source_id_or_by_reader(region, accesses, staff):
    url = reverse("admin:audit_accessevent_changelist")

    def found(term: str) -> set[int]:
        response = staff.get(url, {"q": term})
        assert response.status_code == 200
        return set(response.context["cl"].result_list.values_list("pk", flat=True))

    wang = {e.pk for e in accesses if e.person_id == region.wang.pk}
    assert found(str(region.wang.uuid)) == wang
    assert found(region.b.patient_id) == wang  # hospital B's source Patient of 王小明
    assert found(region.a.source.client_id) == {accesses[0].pk}
    assert found("not-a-reader") == set()


def test_nobody_adds_changes_or_deletes_an_access_event_not_even_a_superuser(accesses, staff):
    pk = accesses[0].pk
    assert staff.get(reverse("admin:audit_accessevent_add")).status_code == 403
    assert staff.post(reverse("admin:audit_accessevent_change", args=[pk]), {"what": "nothing"}).status_code == 403
    assert staff.get(reverse("admin:audit_accessevent_delete", args=[pk])).status_code == 403
    changelist = reverse("admin:audit_accessevent_changelist")
    response = staff.post(changelist, {"action": "delete_selected", "_selected_action": [pk]})
    assert AccessEvent.objects.filter(pk=pk).exists()
    assert response.status_code in (200, 302)
    assert AccessEvent.objects.get(pk=pk).what == "Observation read"


def test_selected_events_export_as_a_bundle_of_balp_audit_events(region, accesses, staff):
    response = staff.post(
        reverse("admin:audit_accessevent_changelist"),
        {"action": "export_audit_events", "_selected_action": [e.pk for e in accesses]},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    assert "attachment" in response["Content-Disposition"]
    bundle = json.loads(response.content)
    Bundle.model_validate(bundle)
    assert bundle["type"] == "collection" and len(bundle["entry"]) == 3
    for entry in bundle["entry"]:
        AuditEvent.model_validate(entry["resource"])
    patients = {entry["resource"]["entity"][0]["what"]["reference"] for entry in bundle["entry"]}
    assert patients == {f"Patient/{region.wang.uuid}", f"Patient/{region.zhao.person.uuid}"}
