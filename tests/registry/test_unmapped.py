"""Unmapped local codes in the registry: counted by one statement (SQLite and PostgreSQL), adding up under
concurrent writers; listed in the admin for the terminology team with a link that maps a code; and the
terminology pages around them (a code system's owner, a drug's ingredients and a class's ATC groups)."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection, transaction
from django.urls import reverse

from registry.models import CodeSystem, ConceptMapEntry, DrugClassMember, DrugIngredient, SourceSystem, UnmappedCode
from registry.services import (
    code_system_ensure,
    concept_map_entry_set,
    concept_upsert,
    source_system_register,
    unmapped_codes_clear_mapped,
    unmapped_codes_count,
)
from registry.terminology import code_map, code_map_load
from tests.registry.factories import ConceptFactory, InstitutionFactory

pytestmark = pytest.mark.django_db

LIS = "urn:hosp-a:lis"


def lis(name: str = "LIS", facility: str = "HOSP-A") -> SourceSystem:
    source, _ = source_system_register(
        institution=InstitutionFactory(),
        kind=SourceSystem.Kind.LIS,
        name=name,
        sending_application=name,
        sending_facility=facility,
    )
    return source


def counts(source) -> dict:
    return {(u.system, u.code): (u.count, u.display) for u in UnmappedCode.objects.filter(source_system=source)}


# --- the count ----------------------------------------------------------------------------------------------


def test_counts_add_up_keep_the_first_display_and_move_last_seen():
    source, other = lis(), lis("LIS-B", "HOSP-B")
    unmapped_codes_count(source_id=source.pk, counts={(LIS, "NA"): (2, "钠"), ("", "X1"): (1, "")})
    first = UnmappedCode.objects.get(code="NA")
    unmapped_codes_count(source_id=source.pk, counts={(LIS, "NA"): (3, "Sodium"), ("", "X1"): (1, "未知")})
    unmapped_codes_count(source_id=other.pk, counts={(LIS, "NA"): (1, "")})
    assert counts(source) == {(LIS, "NA"): (5, "钠"), ("", "X1"): (2, "未知")}
    assert counts(other) == {(LIS, "NA"): (1, "")}
    again = UnmappedCode.objects.get(source_system=source, code="NA")
    assert again.first_seen == first.first_seen and again.last_seen >= first.last_seen


def test_codes_longer_than_the_columns_are_counted_on_one_row():
    source = lis()
    long_code = "C" * 80
    unmapped_codes_count(source_id=source.pk, counts={(LIS, long_code): (1, ""), (LIS, long_code + "X"): (2, "")})
    assert counts(source) == {(LIS, "C" * 64): (3, "")}


def test_a_count_rolled_back_with_its_transaction_counts_nothing():
    source = lis()
    with pytest.raises(RuntimeError), transaction.atomic():
        unmapped_codes_count(source_id=source.pk, counts={(LIS, "NA"): (2, "钠")})
        raise RuntimeError("the write failed")
    assert counts(source) == {}


def test_one_statement_counts_a_whole_run(django_assert_num_queries):
    source = lis()
    many = {(LIS, f"C{i}"): (i + 1, "") for i in range(300)}
    with django_assert_num_queries(1):
        unmapped_codes_count(source_id=source.pk, counts=many)
    assert UnmappedCode.objects.filter(source_system=source).count() == 300


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_counting_the_same_codes_add_up():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises all writers)")
    source = lis()
    rounds, barrier, errors = 20, threading.Barrier(4), []

    def writer(i):
        try:
            barrier.wait()
            for n in range(rounds):
                # Each transaction holds its rows until commit; keys in other orders per thread.
                keys = [(LIS, "NA"), (LIS, "K"), (LIS, f"T{i}")]
                with transaction.atomic():
                    unmapped_codes_count(source_id=source.pk, counts={k: (1, "") for k in keys[:: 1 - 2 * (n % 2)]})
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    found = counts(source)
    assert found[(LIS, "NA")] == (4 * rounds, "") and found[(LIS, "K")] == (4 * rounds, "")
    assert all(found[(LIS, f"T{i}")] == (rounds, "") for i in range(4))


# --- the code map ---------------------------------------------------------------------------------------------


def test_a_code_map_names_its_sources_local_systems_and_translates_by_concept_translates_rule():
    source, other = lis(), lis("LIS-B", "HOSP-B")
    loinc = code_system_ensure(url="http://loinc.org", name="LOINC")
    glucose = concept_upsert(code_system=loinc, code="2345-7", display="葡萄糖")
    potassium = concept_upsert(code_system=loinc, code="2823-3", display="钾")
    CodeSystem.objects.create(url=LIS, name="LIS A", source_system=source)
    CodeSystem.objects.create(url="urn:hosp-b:lis", name="LIS B", source_system=other)
    concept_map_entry_set(source_system=source, local_system=LIS, local_code="GLU", concept=glucose)
    concept_map_entry_set(source_system=source, local_code="K", concept=potassium)
    concept_map_entry_set(source_system=source, local_system="urn:vendor", local_code="1", concept=glucose)
    found = code_map_load(source.pk)
    assert found.systems == {LIS, "urn:vendor", ""}
    assert found.translate(LIS, "GLU").code == "2345-7"
    assert found.translate(LIS, "K").code == "2823-3"  # an entry without a system serves any local system
    assert found.translate("urn:vendor", "GLU") is None
    assert code_map_load(other.pk).systems == {"urn:hosp-b:lis", ""}
    assert code_map_load(other.pk).translate("urn:hosp-b:lis", "GLU") is None


def test_the_snapshot_is_dropped_when_a_map_entry_changes_in_this_process():
    source = lis()
    concept = ConceptFactory()
    assert code_map(source.pk).translate("", "GLU") is None
    entry = concept_map_entry_set(source_system=source, local_code="GLU", concept=concept)
    assert code_map(source.pk).translate("", "GLU").code == concept.code
    entry.delete()
    assert code_map(source.pk).translate("", "GLU") is None


def test_clearing_removes_only_the_rows_now_mapped():
    source = lis()
    concept = ConceptFactory()
    unmapped_codes_count(source_id=source.pk, counts={(LIS, "GLU"): (4, ""), (LIS, "NA"): (1, "")})
    concept_map_entry_set(source_system=source, local_code="GLU", concept=concept)
    assert unmapped_codes_clear_mapped(code_map=code_map_load(source.pk)) == 1
    assert counts(source) == {(LIS, "NA"): (1, "")}


# --- the admin --------------------------------------------------------------------------------------------------


@pytest.fixture
def unmapped_list(db):
    a, b = lis("LIS-A", "HOSP-A"), lis("LIS-B", "HOSP-B")
    unmapped_codes_count(source_id=a.pk, counts={(LIS, "NA"): (7, "钠"), (LIS, "CL"): (2, "氯")})
    unmapped_codes_count(source_id=b.pk, counts={("urn:b", "1001"): (30, "血糖")})
    return a, b


def listed(response) -> list[tuple[str, int]]:
    return [(row.code, row.count) for row in response.context["cl"].result_list]


def test_the_admin_lists_unmapped_codes_most_frequent_first_filtered_by_source_and_searched_by_code(
    admin_client_zh, unmapped_list
):
    a, _ = unmapped_list
    url = reverse("admin:registry_unmappedcode_changelist")
    response = admin_client_zh.get(url)
    assert response.status_code == 200
    assert listed(response) == [("1001", 30), ("NA", 7), ("CL", 2)]
    assert listed(admin_client_zh.get(url, {"source_system__id__exact": a.pk})) == [("NA", 7), ("CL", 2)]
    assert listed(admin_client_zh.get(url, {"q": "CL"})) == [("CL", 2)]
    assert "钠" in response.content.decode()


def test_an_unmapped_codes_link_opens_the_map_entry_form_filled_in_and_the_row_shows_it_mapped(
    admin_client_zh, unmapped_list
):
    a, _ = unmapped_list
    changelist = reverse("admin:registry_unmappedcode_changelist")
    page = admin_client_zh.get(changelist, {"q": "NA"}).content.decode()
    add = reverse("admin:registry_conceptmapentry_add")
    link = next(part.split('"')[0] for part in page.split('href="')[1:] if part.startswith(f"{add}?"))
    query = {k: v[0] for k, v in parse_qs(urlparse(link.replace("&amp;", "&")).query).items()}
    assert query == {"source_system": str(a.pk), "local_system": LIS, "local_code": "NA", "local_display": "钠"}
    form = admin_client_zh.get(add, query)
    assert form.status_code == 200
    initial = form.context["adminform"].form.initial
    assert (initial["local_code"], initial["local_system"]) == ("NA", LIS)
    concept = ConceptFactory()
    saved = admin_client_zh.post(add, {**query, "concept": concept.pk, "equivalence": "equivalent"}, follow=True)
    assert saved.status_code == 200
    entry = ConceptMapEntry.objects.get(source_system=a, local_code="NA")
    assert entry.concept == concept and entry.local_system == LIS
    assert any("codes_retranslate --source" in str(m) for m in saved.context["messages"])
    rows = {row.code: row.is_mapped for row in admin_client_zh.get(changelist).context["cl"].result_list}
    assert rows == {"1001": False, "NA": True, "CL": False}


def test_unmapped_codes_are_read_only_in_the_admin(admin_client_zh, unmapped_list):
    row = UnmappedCode.objects.get(code="NA")
    change = reverse("admin:registry_unmappedcode_change", args=[row.pk])
    assert admin_client_zh.get(change).status_code == 200
    admin_client_zh.post(change, {"count": 0, "code": "XX"})
    row.refresh_from_db()
    assert (row.code, row.count) == ("NA", 7)
    assert admin_client_zh.get(reverse("admin:registry_unmappedcode_add")).status_code == 403


def test_the_unmapped_list_query_count_does_not_grow_with_rows(admin_client_zh, django_assert_max_num_queries):
    source = lis()
    unmapped_codes_count(source_id=source.pk, counts={(LIS, f"C{i}"): (i, "") for i in range(40)})
    with django_assert_max_num_queries(12):
        assert admin_client_zh.get(reverse("admin:registry_unmappedcode_changelist")).status_code == 200


def test_the_code_system_admin_shows_and_sets_its_source_system(admin_client_zh):
    source = lis()
    CodeSystem.objects.create(url=LIS, name="LIS A local", source_system=source)
    CodeSystem.objects.create(url="http://loinc.org", name="LOINC")
    url = reverse("admin:registry_codesystem_changelist")
    response = admin_client_zh.get(url)
    assert source.name in response.content.decode()
    local_only = admin_client_zh.get(url, {"source_system__isempty": "0"}).context["cl"].result_list
    assert [c.url for c in local_only] == [LIS]
    added = admin_client_zh.post(
        reverse("admin:registry_codesystem_add"),
        {"url": "urn:hosp-a:his", "name": "HIS A local", "source_system": source.pk},
    )
    assert added.status_code == 302, added.context["adminform"].form.errors
    assert CodeSystem.objects.get(url="urn:hosp-a:his").source_system == source


def concept_form(concept, **rows) -> dict:
    data = {
        "code_system": concept.code_system_id,
        "code": concept.code,
        "display": concept.display,
        "active": "on",
        "ingredients-TOTAL_FORMS": "0",
        "ingredients-INITIAL_FORMS": "0",
        "class_members-TOTAL_FORMS": "0",
        "class_members-INITIAL_FORMS": "0",
    }
    return {**data, **rows}


def test_a_drugs_ingredients_and_a_classs_atc_groups_are_edited_on_the_concept(admin_client_zh):
    atc = code_system_ensure(url="http://www.whocc.no/atc", name="ATC")
    amoxicillin = concept_upsert(code_system=atc, code="J01CA04", display="阿莫西林")
    drug = ConceptFactory(display="阿莫西林胶囊")
    change = reverse("admin:registry_concept_change", args=[drug.pk])
    assert admin_client_zh.get(change).status_code == 200
    saved = admin_client_zh.post(
        change,
        concept_form(
            drug,
            **{"ingredients-TOTAL_FORMS": "1", "ingredients-0-ingredient": amoxicillin.pk},
            **{"class_members-TOTAL_FORMS": "1", "class_members-0-atc_prefix": "J01C"},
        ),
    )
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    assert DrugIngredient.objects.get(drug=drug).ingredient == amoxicillin
    assert DrugClassMember.objects.get(drug_class=drug).atc_prefix == "J01C"
    # An ingredient must be an ATC level-5 code: the inline says so.
    group = concept_upsert(code_system=atc, code="J01C", display="青霉素类")
    refused = admin_client_zh.post(
        change,
        concept_form(
            drug,
            **{"ingredients-TOTAL_FORMS": "1", "ingredients-0-ingredient": group.pk},
        ),
    )
    assert refused.status_code == 200
    assert "ATC level-5" in refused.content.decode() or "J01CA04" in refused.content.decode()
