"""Local codes translated at write time (issue 16): each laboratory sends its own codes for glucose — LIS A "GLU"
in its code system, LIS B "1001" in another — and both facts are found by LOINC 2345-7, the original coding
kept first; an unmapped local code is stored as sent and counted for the terminology team; another source's
map never applies; re-translation after a map change brings the stored facts up to it. Through the FHIR API
(POST a Bundle, search) and through the corridor's functions, on a real database."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
from django.core.management import call_command

from ehr.errors import WriteRace
from ehr.models import Resource, ResourceVersion
from healthplatform.access import Caller
from healthplatform.errors import PlatformError
from healthplatform.ingest.apply import Run, bundle_apply_as_source, transaction_apply
from healthplatform.ingest.entries import Entry, Received
from healthplatform.ingest.terminology import RETRANSLATION_ACTOR, CodeTranslation, codes_retranslate_step
from registry.models import CodeSystem, ConceptMapEntry, SourceSystem, UnmappedCode
from registry.services import code_system_ensure, concept_map_entry_set, concept_upsert
from registry.terminology import code_map, code_map_load
from tests.fhirapi.client import FHIR_JSON, ids, register_feed
from tests.fhirapi.samples import LOINC, patient_body, sample
from tests.fhirapi.tenants import post

pytestmark = pytest.mark.django_db

LIS_A = "urn:hosp-a:lis"
LIS_B = "urn:hosp-b:lab-codes"
GLUCOSE = {"system": LOINC, "code": "2345-7", "display": "葡萄糖"}
POTASSIUM = {"system": LOINC, "code": "2823-3", "display": "钾"}


def local_system(source: SourceSystem, url: str) -> CodeSystem:
    code_system = code_system_ensure(url=url, name=f"{source.name} local codes")
    code_system.source_system = source
    code_system.save()
    return code_system


@pytest.fixture
def labs(db):
    """Two laboratories at two institutions, each with its local code system, its map of glucose to LOINC and
    a registered patient: ``a`` sends LIS_A|GLU, ``b`` sends LIS_B|1001."""
    loinc = code_system_ensure(url=LOINC, name="LOINC")
    glucose = concept_upsert(code_system=loinc, code="2345-7", display="葡萄糖", display_en="Glucose")
    concept_upsert(code_system=loinc, code="2823-3", display="钾", display_en="Potassium")
    labs = SimpleNamespace()
    for name, facility, url, code in (("a", "HOSP-A", LIS_A, "GLU"), ("b", "HOSP-B", LIS_B, "1001")):
        feed = register_feed(kind=SourceSystem.Kind.LIS, name=f"LIS-{facility}", facility=facility)
        local_system(feed.source, url)
        concept_map_entry_set(source_system=feed.source, local_system=url, local_code=code, concept=glucose)
        mrn = f"urn:platform:authority:{facility}"
        response = post(feed.client, "Patient", patient_body(f"{facility}-1", system=mrn))
        assert response.status_code == 201, response.content
        feed.patient_id = response.json()["id"]
        feed.system, feed.code, feed.hospital = url, code, name
        setattr(labs, name, feed)
    return labs


def observation(feed, *codings: dict, n: int = 1) -> dict:
    body = sample("Observation", f"Patient/{feed.patient_id}", n, hospital=f"hosp-{feed.hospital}")
    body["code"] = {"coding": [dict(c) for c in codings], "text": "血糖"}
    return body


def local(feed, code: str | None = None, display: str = "血糖", **extra) -> dict:
    return {"system": feed.system, "code": code or feed.code, "display": display, **extra}


def transaction_of(*resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": r, "request": {"method": "POST", "url": r["resourceType"]}} for r in resources],
    }


def stored(feed, resource_type: str = "Observation") -> list[dict]:
    return [r.body for r in Resource.objects.filter(source=feed.source, resource_type=resource_type).order_by("pk")]


def unmapped(feed) -> dict[tuple[str, str], tuple[int, str]]:
    rows = UnmappedCode.objects.filter(source_system=feed.source)
    return {(u.system, u.code): (u.count, u.display) for u in rows}


def caller_of(feed) -> Caller:
    source = SourceSystem.objects.select_related("institution").get(pk=feed.source.pk)
    return Caller(source, source.client_id)


def received(bundle) -> Received:
    return Received(request_line="TEST", body=str(bundle))


# --- the write: translated, found by the standard code ------------------------------------------------------------


def test_two_laboratories_local_glucose_codes_are_both_found_by_loinc_through_the_fhir_api(labs, admin_client):
    for feed in (labs.a, labs.b):
        response = post(feed.client, "", transaction_of(observation(feed, local(feed))))
        assert response.status_code == 200, response.content
    found = ids(admin_client.get(f"/fhir/Observation?code={LOINC}|2345-7"))
    assert sorted(found) == sorted(r.fhir_id for r in Resource.objects.filter(resource_type="Observation"))
    assert len(found) == 2
    # And by either laboratory's own code, still: the original is kept.
    assert len(ids(admin_client.get(f"/fhir/Observation?code={LIS_A}|GLU"))) == 1
    assert len(ids(admin_client.get(f"/fhir/Observation?code={LIS_B}|1001"))) == 1
    for feed in (labs.a, labs.b):
        [body] = stored(feed)
        assert body["code"]["coding"] == [local(feed), GLUCOSE]
        assert body["code"]["text"] == "血糖"


def test_the_original_coding_stays_first_the_standard_one_follows_it_and_user_selected_is_the_senders(labs):
    other = {"system": "http://snomed.info/sct", "code": "33747003"}
    body = observation(labs.a, local(labs.a, userSelected=True), other)
    assert post(labs.a.client, "Observation", body).status_code == 201
    [stored_body] = stored(labs.a)
    assert stored_body["code"]["coding"] == [local(labs.a, userSelected=True), GLUCOSE, other]


def test_a_local_code_already_sent_with_its_standard_coding_is_not_given_it_twice(labs):
    body = observation(labs.a, local(labs.a), {"system": LOINC, "code": "2345-7"})
    assert post(labs.a.client, "Observation", body).status_code == 201
    [stored_body] = stored(labs.a)
    assert stored_body["code"]["coding"] == [local(labs.a), {"system": LOINC, "code": "2345-7"}]


def test_translating_twice_is_translating_once(labs):
    body = observation(labs.a, local(labs.a), local(labs.a, "GLU", display="血糖(空腹)"))
    translation = CodeTranslation(code_map_load(labs.a.source.pk))
    assert translation.resource(body) is True
    once = copy.deepcopy(body)
    assert translation.resource(body) is False
    assert body == once
    # Two local codes of one list that map to the same concept: one standard coding, after the first.
    assert body["code"]["coding"] == [local(labs.a), GLUCOSE, local(labs.a, "GLU", display="血糖(空腹)")]


def test_codings_anywhere_in_the_fact_are_translated_contained_extensions_and_bare_coding_lists(labs):
    body = observation(labs.a, local(labs.a))
    body["meta"] = {"tag": [local(labs.a)]}
    body["interpretation"] = [{"coding": [local(labs.a)]}]
    body["component"] = [{"code": {"coding": [local(labs.a)]}, "valueString": "x"}]
    body["extension"] = [{"url": "urn:ext", "valueCodeableConcept": {"coding": [local(labs.a)]}}]
    assert post(labs.a.client, "Observation", body).status_code == 201
    [s] = stored(labs.a)
    for codings in (
        s["meta"]["tag"],
        s["interpretation"][0]["coding"],
        s["component"][0]["code"]["coding"],
        s["extension"][0]["valueCodeableConcept"]["coding"],
    ):
        assert codings == [local(labs.a), GLUCOSE]


def test_a_coding_without_a_system_is_translated_by_a_map_entry_made_without_one(labs, admin_client):
    potassium = POTASSIUM["code"]
    concept = labs.a.source.concept_maps.get().concept.code_system.concepts.get(code=potassium)
    concept_map_entry_set(source_system=labs.a.source, local_code="K", concept=concept)
    body = observation(labs.a, {"code": "K"})
    assert post(labs.a.client, "Observation", body).status_code == 201
    assert stored(labs.a)[0]["code"]["coding"] == [{"code": "K"}, POTASSIUM]
    assert len(ids(admin_client.get(f"/fhir/Observation?code={LOINC}|{potassium}"))) == 1
    # An entry without a system also serves the code in the source's local system (concept_translate's rule).
    body = observation(labs.a, local(labs.a, "K", display="钾"), n=2)
    assert post(labs.a.client, "Observation", body).status_code == 201
    assert stored(labs.a)[1]["code"]["coding"] == [local(labs.a, "K", display="钾"), POTASSIUM]


def test_a_coding_of_a_standard_system_is_untouched_even_if_a_map_entry_names_that_system(labs):
    # A mapping clerk's slip: LOINC named as a local system of LIS A. A standard terminology is never local.
    glucose = labs.a.source.concept_maps.get().concept
    concept_map_entry_set(source_system=labs.a.source, local_system=LOINC, local_code="718-7", concept=glucose)
    assert LOINC not in code_map_load(labs.a.source.pk).systems
    body = sample("Observation", f"Patient/{labs.a.patient_id}", hospital="hosp-a")  # LOINC 718-7
    assert post(labs.a.client, "Observation", body).status_code == 201
    assert stored(labs.a)[0]["code"] == body["code"]
    assert unmapped(labs.a) == {}


# --- another source's map -----------------------------------------------------------------------------------------


def test_another_sources_map_is_never_applied_even_to_an_identical_local_system_url(labs, admin_client):
    # LIS B's vendor uses the very URL LIS A's codes have; B maps 1001 in it, A maps GLU.
    glucose = labs.a.source.concept_maps.get().concept
    concept_map_entry_set(source_system=labs.b.source, local_system=LIS_A, local_code="1001", concept=glucose)
    sent = observation(labs.b, {"system": LIS_A, "code": "GLU", "display": "血糖"})
    assert post(labs.b.client, "Observation", sent).status_code == 201
    [body] = stored(labs.b)
    assert body["code"]["coding"] == [{"system": LIS_A, "code": "GLU", "display": "血糖"}]
    assert ids(admin_client.get(f"/fhir/Observation?code={LOINC}|2345-7")) == []
    # Unmapped for B, counted for B (and not for A, whose map has it).
    assert unmapped(labs.b) == {(LIS_A, "GLU"): (1, "血糖")}
    assert unmapped(labs.a) == {}


def test_a_code_in_another_sources_local_system_that_this_source_never_named_is_not_its_local_code(labs):
    sent = observation(labs.b, {"system": LIS_A, "code": "GLU"})
    assert post(labs.b.client, "Observation", sent).status_code == 201
    assert stored(labs.b)[0]["code"]["coding"] == [{"system": LIS_A, "code": "GLU"}]
    assert unmapped(labs.b) == {}


def test_staff_writes_are_not_translated(labs, admin_client):
    body = observation(labs.a, local(labs.a))
    assert post(admin_client, "Observation", body).status_code == 201
    assert Resource.objects.get(resource_type="Observation", source=None).body["code"]["coding"] == [local(labs.a)]


# --- unmapped codes -----------------------------------------------------------------------------------------------


def test_unmapped_local_codes_are_stored_as_sent_and_counted_per_source_system(labs):
    first = [observation(labs.a, local(labs.a, "NA", display="钠"), n=n) for n in (1, 2)]
    encounter_class = {"system": LIS_A, "code": "OUTPT", "display": "门诊"}
    encounter = sample("Encounter", f"Patient/{labs.a.patient_id}", hospital="hosp-a")
    encounter["class"] = encounter_class
    assert post(labs.a.client, "", transaction_of(*first, encounter)).status_code == 200
    assert [b["code"]["coding"] for b in stored(labs.a)] == [[local(labs.a, "NA", display="钠")]] * 2
    assert stored(labs.a, "Encounter")[0]["class"] == encounter_class
    row = UnmappedCode.objects.get(source_system=labs.a.source, code="NA")
    assert (row.count, row.display, row.system) == (2, "钠", LIS_A)
    seen = row.last_seen
    # Later: counted on, the display first sent kept, last_seen moved; LIS B's same code is LIS B's row.
    again = observation(labs.a, local(labs.a, "NA", display="Sodium"), n=3)
    assert post(labs.a.client, "Observation", again).status_code == 201
    sent_b = observation(labs.b, {"system": LIS_B, "code": "NA"})
    assert post(labs.b.client, "Observation", sent_b).status_code == 201
    row.refresh_from_db()
    assert (row.count, row.display) == (3, "钠")
    assert row.last_seen >= seen and row.first_seen <= seen
    # A single Coding (Encounter.class) cannot take a translation, but is counted when unmapped.
    assert unmapped(labs.a) == {(LIS_A, "NA"): (3, "钠"), (LIS_A, "OUTPT"): (1, "门诊")}
    assert unmapped(labs.b) == {(LIS_B, "NA"): (1, "")}


def test_a_refused_transaction_counts_nothing(labs):
    good = observation(labs.a, local(labs.a, "NA"))
    broken = observation(labs.a, local(labs.a, "CL"), n=2)
    broken["subject"] = {"reference": "Patient/not-known"}
    response = post(labs.a.client, "", transaction_of(good, broken))
    assert response.status_code >= 400
    assert unmapped(labs.a) == {}
    assert stored(labs.a) == []


def test_a_transaction_rolled_back_after_counting_counts_nothing(labs):
    # ``then`` runs inside the transaction after the writes and the count: its refusal rolls all of it back.
    def refuse():
        raise PlatformError.one(422, "processing", "refused after the writes")

    bundle = transaction_of(observation(labs.a, local(labs.a, "NA")))
    entries = [Entry("POST", "Observation", resource=bundle["entry"][0]["resource"], index=0)]
    with pytest.raises(PlatformError):
        transaction_apply(caller=caller_of(labs.a), entries=entries, received=received(bundle), then=refuse)
    assert unmapped(labs.a) == {}
    assert stored(labs.a) == []


def test_a_batch_counts_each_entry_in_its_own_transaction(labs):
    ok_entry = observation(labs.a, local(labs.a, "NA"))
    refused = observation(labs.a, local(labs.a, "CL"), n=2)
    refused["subject"] = {"reference": "Patient/not-known"}
    bundle = {**transaction_of(ok_entry, refused), "type": "batch"}
    answer = bundle_apply_as_source(source_id=labs.a.source.pk, bundle=bundle)
    assert answer["entries"][0]["outcome"] == "created"
    assert answer["entries"][1]["status"] >= 400
    assert unmapped(labs.a) == {(LIS_A, "NA"): (1, "血糖")}


# --- a lost race runs the Bundle again from the resources as received ---------------------------------------------


def test_a_bundle_run_again_after_a_lost_race_is_translated_once_and_counted_once(labs, admin_client):
    bundle = transaction_of(observation(labs.a, local(labs.a)), observation(labs.a, local(labs.a, "NA"), n=2))
    as_received = copy.deepcopy(bundle)
    entries = [Entry("POST", "Observation", resource=e["resource"], index=i) for i, e in enumerate(bundle["entry"])]
    attempts = []

    def lose_the_first_race():
        # What the archive raises when a concurrent writer won a business identifier: the whole attempt is
        # rolled back and run again.
        attempts.append(copy.deepcopy([e.resource for e in entries]))
        if len(attempts) == 1:
            raise WriteRace()

    transaction_apply(caller=caller_of(labs.a), entries=entries, received=received(bundle), then=lose_the_first_race)
    assert len(attempts) == 2
    assert attempts[0] == attempts[1]  # the second attempt started from the resources as received
    assert stored(labs.a)[0]["code"]["coding"] == [local(labs.a), GLUCOSE]
    assert unmapped(labs.a) == {(LIS_A, "NA"): (1, "血糖")}
    assert len(ids(admin_client.get(f"/fhir/Observation?code={LOINC}|2345-7"))) == 1
    assert as_received["entry"][1] == bundle["entry"][1]


def test_a_failed_attempt_leaves_the_resources_as_received(labs):
    body = observation(labs.a, local(labs.a))
    as_received = copy.deepcopy(body)
    run = Run(caller_of(labs.a), None)
    run.codes_translate(body)
    assert body["code"]["coding"] == [local(labs.a), GLUCOSE]
    run.undo()
    assert body == as_received


def test_a_resend_of_a_translated_fact_is_still_a_resend(labs):
    body = observation(labs.a, local(labs.a))
    first = post(labs.a.client, "Observation", copy.deepcopy(body))
    again = post(labs.a.client, "Observation", copy.deepcopy(body))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Resource.objects.get(resource_type="Observation").version_id == 1


# --- the snapshot -------------------------------------------------------------------------------------------------


def test_the_code_map_is_read_once_for_a_bundle_of_many_facts(labs, django_assert_max_num_queries):
    code_map(labs.a.source.pk)  # the process's snapshot, as any earlier write of this source left it
    facts = [observation(labs.a, local(labs.a), n=n) for n in range(1, 41)]
    translation = CodeTranslation.of(labs.a.source.pk)
    with django_assert_max_num_queries(0):
        for body in facts:
            translation.resource(body)
    assert all(b["code"]["coding"][1] == GLUCOSE for b in facts)


def test_a_map_entry_saved_in_this_process_is_used_by_the_next_write(labs):
    sent = observation(labs.a, local(labs.a, "K", display="钾"))
    assert post(labs.a.client, "Observation", copy.deepcopy(sent)).status_code == 201
    potassium = labs.a.source.concept_maps.get().concept.code_system.concepts.get(code="2823-3")
    concept_map_entry_set(source_system=labs.a.source, local_system=LIS_A, local_code="K", concept=potassium)
    assert post(labs.a.client, "Observation", observation(labs.a, local(labs.a, "K", display="钾"), n=2)).status_code
    assert [b["code"]["coding"][1:] for b in stored(labs.a)] == [[], [POTASSIUM]]


# --- re-translation after a map changed ---------------------------------------------------------------------------


def map_potassium(feed, local_code: str = "K") -> None:
    potassium = (
        ConceptMapEntry.objects.filter(source_system=feed.source)
        .first()
        .concept.code_system.concepts.get(code="2823-3")
    )
    concept_map_entry_set(source_system=feed.source, local_system=feed.system, local_code=local_code, concept=potassium)


def test_retranslation_adds_the_newly_mapped_coding_as_a_new_version_and_makes_the_fact_searchable(labs, admin_client):
    for feed in (labs.a, labs.b):
        sent = observation(feed, local(feed, "K", display="钾"))
        assert post(feed.client, "Observation", sent).status_code == 201
    [fact] = Resource.objects.filter(source=labs.a.source, resource_type="Observation")
    assert ids(admin_client.get(f"/fhir/Observation?code={LOINC}|2823-3")) == []
    map_potassium(labs.a)
    step = codes_retranslate_step(source_id=labs.a.source.pk, batch_size=500)
    assert (step.examined, step.translated, step.busy, step.done, step.cleared) == (1, 1, 0, True, 1)
    fact.refresh_from_db()
    assert fact.version_id == 2 and fact.actor == RETRANSLATION_ACTOR
    assert fact.body["code"]["coding"] == [local(labs.a, "K", display="钾"), POTASSIUM]
    assert fact.submission_id is not None  # the hospital's message still carries its content
    first = ResourceVersion.objects.get(resource=fact, version_id=1)
    assert first.body["code"]["coding"] == [local(labs.a, "K", display="钾")]
    assert ids(admin_client.get(f"/fhir/Observation?code={LOINC}|2823-3")) == [fact.fhir_id]
    # Now mapped: no longer listed; LIS B's K (unmapped in B's map) still is, and its fact is as it was.
    assert unmapped(labs.a) == {}
    assert unmapped(labs.b) == {(LIS_B, "K"): (1, "钾")}
    assert stored(labs.b)[0]["code"]["coding"] == [local(labs.b, "K", display="钾")]
    # Run again: nothing more to do.
    again = codes_retranslate_step(source_id=labs.a.source.pk)
    assert (again.examined, again.translated) == (1, 0)
    fact.refresh_from_db()
    assert fact.version_id == 2


def test_retranslation_goes_in_batches_and_resumes_after_the_last_fact_of_a_batch(labs):
    facts = [observation(labs.a, local(labs.a, "K"), n=n) for n in range(1, 6)]
    assert post(labs.a.client, "", transaction_of(*facts)).status_code == 200
    map_potassium(labs.a)
    steps, after = [], 0
    while not steps or not steps[-1].done:
        steps.append(codes_retranslate_step(source_id=None, after=after, batch_size=2))
        after = steps[-1].after
    assert [s.translated for s in steps] == [2, 2, 1]
    assert all(b["code"]["coding"][1] == POTASSIUM for b in stored(labs.a))


def test_a_resend_after_the_map_changed_and_retranslation_is_still_a_resend(labs):
    sent = observation(labs.a, local(labs.a, "K"))
    assert post(labs.a.client, "Observation", copy.deepcopy(sent)).status_code == 201
    map_potassium(labs.a)
    codes_retranslate_step(source_id=labs.a.source.pk)
    again = post(labs.a.client, "Observation", copy.deepcopy(sent))
    assert again.status_code == 200, again.content
    assert Resource.objects.get(resource_type="Observation").version_id == 2


def test_a_resend_after_the_map_changed_is_a_resend_before_any_retranslation(labs):
    # Resends are normal traffic: the same fact sent again gains the new coding, the stored one lacks it.
    sent = observation(labs.a, local(labs.a, "K"))
    first = post(labs.a.client, "Observation", copy.deepcopy(sent))
    map_potassium(labs.a)
    again = post(labs.a.client, "Observation", copy.deepcopy(sent))
    assert again.status_code == 200, again.content
    assert again.json()["id"] == first.json()["id"]
    # Stored as it was (re-translation adds the coding); other content is still refused.
    assert Resource.objects.get(resource_type="Observation").version_id == 1
    changed = {**copy.deepcopy(sent), "status": "amended"}
    assert post(labs.a.client, "Observation", changed).status_code == 409


def test_the_command_retranslates_one_source_or_every_source_and_queues_the_job_with_celery(labs, capsys):
    for feed in (labs.a, labs.b):
        assert post(feed.client, "Observation", observation(feed, local(feed, "K"))).status_code == 201
        map_potassium(feed)
    call_command("codes_retranslate", "--source", labs.a.source.client_id)
    assert [b["code"]["coding"][1:] for b in stored(labs.a) + stored(labs.b)] == [[POTASSIUM], []]
    # Celery runs eagerly in tests (no broker): the task chain re-translates every source's facts.
    call_command("codes_retranslate", "--celery")
    assert [b["code"]["coding"][1:] for b in stored(labs.a) + stored(labs.b)] == [[POTASSIUM], [POTASSIUM]]
    out = capsys.readouterr().out
    assert "queued" in out and "translated 1" in out


def test_the_command_refuses_an_unknown_source(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no source system"):
        call_command("codes_retranslate", "--source", "ss-nobody")


def test_a_fact_deleted_since_is_not_brought_back_by_retranslation(labs):
    response = post(labs.a.client, "Observation", observation(labs.a, local(labs.a, "K")))
    fhir_id = response.json()["id"]
    assert labs.a.client.delete(f"/fhir/Observation/{fhir_id}", content_type=FHIR_JSON).status_code in (200, 204)
    map_potassium(labs.a)
    step = codes_retranslate_step(source_id=labs.a.source.pk)
    assert (step.examined, step.translated) == (0, 0)
    assert Resource.objects.get(fhir_id=fhir_id).deleted
