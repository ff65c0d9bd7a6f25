"""The archive's searches through ``ehr.selectors.query_parse`` and ``resources_search``, with no HTTP in
between: tokens, dates with every prefix, _lastUpdated, the patient across the person, keyset paging,
_include/_revinclude, _summary=count and the parameters it refuses.

Dates are checked against R4's own definition of the prefixes (search.html, "prefix"): every date is a range
implied by its precision, and ``eq`` is "the range of the search value fully contains the range of the
target value", ``gt`` "the range above the search value intersects the range of the target value", ``ge``
"gt, or eq", ``sa`` "does not overlap, and the range above contains it", and so on.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ehr.errors import ResourceError
from ehr.indexing import _DATE_RE, FAR_FUTURE, FAR_PAST  # the grammar the parser admits, and open ends
from ehr.models import Resource
from ehr.selectors import DATE_PREFIXES, resources_search
from mpi.services import person_merge, person_unmerge
from tests.ehr.factories import create, parse, parsed, patient, search, source_system

pytestmark = pytest.mark.django_db
PLATFORM_ZONE = ZoneInfo("Asia/Shanghai")  # settings.TIME_ZONE: where a date without a time starts and ends
LOINC = "http://loinc.org"


def pks(page) -> list[int]:
    return [r.pk for r in page.matches]


def coded(system: str | None, code: str) -> dict:
    return {"coding": [{"code": code, **({"system": system} if system else {})}]}


# --- tokens ------------------------------------------------------------------------------------------------


@pytest.fixture
def coded_observations(hospital, who) -> dict[str, int]:
    """Four Observations: haemoglobin in LOINC, in a local system and with no system; glucose in LOINC."""
    rows = {
        "loinc": (LOINC, "718-7", "final"),
        "local": ("urn:local", "718-7", "final"),
        "bare": (None, "718-7", "amended"),
        "glucose": (LOINC, "2345-7", "amended"),
    }
    return {
        name: create(hospital, "Observation", who, n, code=coded(system, code), status=status).resource.pk
        for n, (name, (system, code, status)) in enumerate(rows.items(), start=1)
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"code={LOINC}|718-7", {"loinc"}),
        ("code=718-7", {"loinc", "local", "bare"}),  # no system: any system
        ("code=|718-7", {"bare"}),  # "|code": no system at all
        ("code=urn:other|718-7", set()),
        ("code=718-7,2345-7", {"loinc", "local", "bare", "glucose"}),  # a comma is "or"
        (f"code={LOINC}|718-7,{LOINC}|2345-7", {"loinc", "glucose"}),
        ("code=718-7&code=2345-7", set()),  # a repeated parameter is "and"
        (f"code:not={LOINC}|718-7", {"local", "bare", "glucose"}),
        ("code:not=718-7", {"glucose"}),
        ("code:not=718-7,2345-7", set()),
        ("status=final", {"loinc", "local"}),
        ("status:not=final", {"bare", "glucose"}),
        ("status=amended,final", {"loinc", "local", "bare", "glucose"}),
        ("identifier=urn:hosp-a:observation|Obs-2", {"local"}),
        ("identifier=Obs-2", {"local"}),
        ("identifier=urn:other|Obs-2", set()),
        ("identifier:not=urn:hosp-a:observation|Obs-2", {"loinc", "bare", "glucose"}),
    ],
)
def test_token_search_with_and_without_a_system_and_not(coded_observations, query, expected):
    assert set(pks(search("Observation", query))) == {coded_observations[name] for name in expected}


# --- dates -------------------------------------------------------------------------------------------------


@pytest.fixture
def dated(hospital, who) -> dict[str, int]:
    """An Encounter of 09:00-10:00 on 1 May 2024 (a period) and an Observation at 10:00:00 (an instant)."""
    encounter = create(hospital, "Encounter", who)  # period 2024-05-01T09:00:00+08:00 to 10:00:00+08:00
    instant = create(hospital, "Observation", who, effectiveDateTime=None, effectiveInstant="2024-05-01T10:00:00+08:00")
    return {"Encounter": encounter.resource.pk, "Observation": instant.resource.pk}


CONTAINS = {"eq", "ge", "le"}
BEFORE = {"ne", "gt", "ge", "sa"}  # the search value is before the resource's range
AFTER = {"ne", "lt", "le", "eb"}  # the search value is after it


@pytest.mark.parametrize(
    ("resource_type", "value", "matching"),
    [
        ("Encounter", "2024-05-01", CONTAINS),
        ("Encounter", "2024-05", CONTAINS),
        ("Encounter", "2024-04-30", BEFORE),
        ("Encounter", "2024-05-02", AFTER),
        ("Encounter", "2024-05-01T00:59:59Z", BEFORE),  # 08:59:59 here
        ("Encounter", "2024-05-01T09:30+08:00", {"ne", "gt", "lt", "ge", "le"}),  # within: the period reaches past
        ("Encounter", "2023", BEFORE),
        ("Observation", "2024-05-01T10:00:00+08:00", CONTAINS),
        ("Observation", "2024-05-01T02:00:00Z", CONTAINS),  # the same instant in UTC
        ("Observation", "2024-05-01T10:00+08:00", CONTAINS),
        ("Observation", "2024", CONTAINS),
        ("Observation", "2024-05-01T09:59:59+08:00", BEFORE),
        ("Observation", "2024-05-01T10:00:01+08:00", AFTER),
        ("Observation", "2024-05-02", AFTER),
    ],
)
def test_every_date_prefix_on_a_period_and_on_an_instant(dated, resource_type, value, matching):
    found = {p for p in DATE_PREFIXES if pks(search(resource_type, f"date={p}{value}")) == [dated[resource_type]]}
    assert found == matching
    assert pks(search(resource_type, f"date={value}")) == pks(search(resource_type, f"date=eq{value}"))


def test_two_dates_bound_a_range_and_a_resource_without_a_date_matches_no_prefix(hospital, who, dated):
    undated = create(hospital, "Observation", who, 2, effectiveDateTime=None).resource.pk
    assert pks(search("Observation", "date=ge2024-05-01&date=lt2024-05-02")) == [dated["Observation"]]
    assert pks(search("Observation", "date=ge2024-05-02&date=lt2024-05-03")) == []
    for prefix in DATE_PREFIXES:
        assert undated not in pks(search("Observation", f"date={prefix}2024-05-01")), prefix


def test_last_updated_with_prefixes(hospital, who):
    times = ["2024-01-10T10:00:00Z", "2024-06-01T10:00:00Z", "2025-01-01T10:00:00Z"]
    made = [create(hospital, "Observation", who, n).resource.pk for n in range(3)]
    for pk, when in zip(made, times, strict=True):
        Resource.objects.filter(pk=pk).update(last_updated=dt.datetime.fromisoformat(when))

    def found(query: str) -> list[int]:
        return sorted(made.index(pk) for pk in pks(search("Observation", query)))

    assert found("_lastUpdated=2024") == [0, 1]
    assert found("_lastUpdated=ge2024-06-01") == [1, 2]
    assert found("_lastUpdated=lt2024-06") == [0]
    assert found("_lastUpdated=gt2024-06-01T10:00:00Z") == [2]
    assert found("_lastUpdated=le2024-06-01T10:00:00Z") == [0, 1]
    assert found("_lastUpdated=sa2024") == [2]
    assert found("_lastUpdated=eb2024-06-01T10:00:00Z") == [0]
    assert found("_lastUpdated=ne2024-06-01T10:00:00Z") == [0, 2]
    assert found("_lastUpdated=ge2024-06-01&date=2024-05-01") == [1, 2]  # the clinical date is another column


# --- dates: R4's definition, property-tested ----------------------------------------------------------------

ONSETS = [  # Conditions' onset[x]: dates of each precision, instants, and periods (closed, open, partial)
    "2024",
    "2024-05",
    "2024-05-01",
    "2024-05-01T10:00:00+08:00",
    "2024-04-30T23:59:59+08:00",
    "2024-05-01T16:00:00Z",
    {"start": "2024-04-30T09:00:00+08:00", "end": "2024-05-01T10:00:00+08:00"},
    {"start": "2024-05-01", "end": "2024-05-02"},
    {"start": "2024-05-01T12:00:00+08:00"},
    {"end": "2024-05-01T12:00:00+08:00"},
    {"start": "2024-04", "end": "2024-06"},
]


@pytest.fixture
def onsets(hospital, who) -> dict[int, object]:
    """One Condition per onset: its pk -> the onset as written."""
    made = {}
    for n, onset in enumerate(ONSETS):
        fields = {"onsetPeriod": onset, "onsetDateTime": None} if isinstance(onset, dict) else {"onsetDateTime": onset}
        made[create(hospital, "Condition", who, n, **fields).resource.pk] = onset
    return made


def r4_range(text: str) -> tuple[dt.datetime, dt.datetime]:
    """The half-open range [start, end) a FHIR date or dateTime (no fraction) stands for, by its precision."""
    if "T" in text:
        at = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        clock = text.split("T", 1)[1].removesuffix("Z")[:8]  # the time without its zone: 10:00 or 10:00:00
        return at, at + (dt.timedelta(minutes=1) if clock.count(":") == 1 else dt.timedelta(seconds=1))
    parts = [int(p) for p in text.split("-")]
    start = dt.datetime(*parts, *[1] * (3 - len(parts)), tzinfo=PLATFORM_ZONE)
    if len(parts) == 1:
        return start, start.replace(year=start.year + 1)
    if len(parts) == 2:
        return start, (start + dt.timedelta(days=32)).replace(day=1)
    return start, start + dt.timedelta(days=1)


def r4_target_range(onset) -> tuple[dt.datetime, dt.datetime]:
    if isinstance(onset, str):
        return r4_range(onset)
    start = r4_range(onset["start"])[0] if "start" in onset else FAR_PAST
    end = r4_range(onset["end"])[1] if "end" in onset else FAR_FUTURE
    return start, end


def r4_matches(prefix: str, value: str, onset) -> bool:
    """R4 search.html's table of prefixes, on half-open ranges."""
    low, high = r4_range(value)
    start, end = r4_target_range(onset)
    eq = low <= start and end <= high
    gt, lt = end > high, start < low
    return {
        "eq": eq,
        "ne": not eq,
        "gt": gt,
        "lt": lt,
        "ge": gt or eq,
        "le": lt or eq,
        "sa": start >= high,
        "eb": end <= low,
    }[prefix]


INSTANTS = st.datetimes(
    min_value=dt.datetime(2024, 4, 29), max_value=dt.datetime(2024, 5, 3), timezones=st.just(dt.UTC)
)
ZONES = st.sampled_from(["+08:00", "Z", "-05:00"])


@st.composite
def search_dates(draw) -> str:
    """A search value of any precision near the onsets, without a fraction of a second."""
    at = draw(INSTANTS)
    zone = draw(ZONES)
    offset = (
        dt.timedelta(hours=8) if zone == "+08:00" else dt.timedelta(hours=-5) if zone == "-05:00" else dt.timedelta()
    )
    local = (at + offset).replace(tzinfo=None)
    precision = draw(st.sampled_from(["year", "month", "day", "minute", "second"]))
    return {
        "year": f"{draw(st.integers(2023, 2025))}",
        "month": local.strftime("%Y-%m"),
        "day": local.strftime("%Y-%m-%d"),
        "minute": local.strftime("%Y-%m-%dT%H:%M") + zone,
        "second": local.strftime("%Y-%m-%dT%H:%M:%S") + zone,
    }[precision]


@pytest.mark.parametrize("prefix", DATE_PREFIXES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=search_dates())
@example(value="2024-05-01")
def test_each_date_prefix_matches_what_r4_defines(onsets, prefix, value):
    found = set(pks(search("Condition", [("onset-date", f"{prefix}{value}")])))
    assert found == {pk for pk, onset in onsets.items() if r4_matches(prefix, value, onset)}


def test_an_instant_with_milliseconds_lies_within_its_second(hospital, who):
    found = create(
        hospital, "Observation", who, effectiveDateTime=None, effectiveInstant="2024-05-01T10:00:00.123+08:00"
    )
    assert pks(search("Observation", "date=2024-05-01T10:00:00+08:00")) == [found.resource.pk]
    assert pks(search("Observation", "date=gt2024-05-01T10:00:00+08:00")) == []


@pytest.mark.parametrize("when", ["0001-01-01", "9999-12-31T23:00:00-05:00"])
def test_a_resource_dated_at_the_edge_of_the_calendar_is_stored_and_found(hospital, who, when):
    with transaction.atomic():
        written = create(hospital, "Observation", who, effectiveDateTime=when)
    assert pks(search("Observation", f"patient={who.uuid}")) == [written.resource.pk]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(["", *DATE_PREFIXES]), text=st.from_regex(_DATE_RE, fullmatch=True))
@example(prefix="", text="0001")
def test_any_date_search_value_is_a_query_or_a_resource_error(hospital, who, prefix, text):
    for name in ("date", "_lastUpdated"):
        try:
            with transaction.atomic():
                q = parsed("Observation", [(name, f"{prefix}{text}")])
                resources_search(q)
        except ResourceError as error:
            assert error.expression == name


# --- the patient: every identity of the person, now ----------------------------------------------------------


def test_patient_spans_every_identity_of_the_person_and_follows_merge_and_unmerge(hospital, who):
    other = patient("HOSP-B")
    assert other.person_id != who.person_id
    mine = create(hospital, "Observation", who, 1).resource.pk
    theirs = create(source_system(), "Observation", other, 2).resource.pk

    def found(patient_id) -> set[int]:
        return set(pks(search("Observation", f"patient={patient_id}")))

    assert found(who.uuid) == found(f"Patient/{who.uuid}") == found(who.person.uuid) == {mine}
    assert set(pks(search("Observation", f"subject=Patient/{other.uuid}"))) == {theirs}
    merge = person_merge(survivor=who.person, duplicate=other.person, actor="test", reason="one resident")
    assert found(who.uuid) == found(other.uuid) == found(who.person.uuid) == {mine, theirs}
    assert found(other.person.uuid) == {mine, theirs}  # the merged person's id follows to its survivor
    person_unmerge(merge=merge, actor="test", reason="two residents")
    assert (found(who.uuid), found(other.uuid)) == ({mine}, {theirs})


def test_patient_and_subject_are_one_parameter_and_two_patients_are_or(hospital, who):
    other = patient("HOSP-B")
    mine = create(hospital, "AllergyIntolerance", who, 1).resource.pk
    theirs = create(hospital, "AllergyIntolerance", other, 2).resource.pk
    assert pks(search("AllergyIntolerance", f"patient={who.uuid}")) == [mine]
    assert set(pks(search("AllergyIntolerance", f"patient={who.uuid},{other.uuid}"))) == {mine, theirs}
    assert pks(search("AllergyIntolerance", "patient=Patient/01a236d8-0000-7000-8000-000000000000")) == []


# --- keyset paging -----------------------------------------------------------------------------------------

DATES = st.sampled_from([None, "2024", "2024-05-01", "2024-05-01T10:00:00+08:00", "2024-05-02T10:00:00Z", "2023-12-31"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dates=st.lists(DATES, max_size=9), count=st.integers(1, 4), sort=st.sampled_from(["_id", "date", "-date"]))
@example(dates=["2024-05-01"] * 5 + [None] * 3, count=2, sort="-date")
def test_keyset_paging_visits_every_match_once_in_order(hospital, who, dates, count, sort):
    Resource.objects.all().delete()
    for n, date in enumerate(dates):
        create(hospital, "Observation", who, n, effectiveDateTime=date)
    seen, cursor, pages = [], None, 0
    while True:
        pairs = [("patient", str(who.uuid)), ("_sort", sort), ("_count", str(count))]
        page = search("Observation", pairs + ([("_cursor", cursor)] if cursor else []))
        seen += [(r.effective_low, r.pk) for r in page.matches]
        pages += 1
        if not (cursor := page.next_cursor):
            break
    assert len(seen) == len({pk for _, pk in seen}) == len(dates)
    assert pages == max(1, -(-len(dates) // count))  # a full last page has no empty page after it
    if sort == "_id":
        assert seen == sorted(seen, key=lambda row: row[1])
    else:
        # Dates in order, ties by id in the same direction, resources without a date last either way.
        sign = -1 if sort.startswith("-") else 1
        assert seen == sorted(seen, key=lambda r: (r[0] is None, sign * (r[0].timestamp() if r[0] else 0), sign * r[1]))


# --- _include, _revinclude, _summary -------------------------------------------------------------------------


@pytest.fixture
def linked(hospital, who):
    """An Encounter, an Observation of it, and a DiagnosticReport with that Observation as its result."""
    encounter = create(hospital, "Encounter", who).resource
    observation = create(hospital, "Observation", who, encounter={"reference": f"Encounter/{encounter.fhir_id}"})
    report = create(
        hospital, "DiagnosticReport", who, result=[{"reference": f"Observation/{observation.resource.fhir_id}"}]
    )
    create(hospital, "Observation", who, 2)  # another, of no encounter and in no report
    return encounter.pk, observation.resource, report.resource.pk


def test_include_and_revinclude_bring_what_the_matches_refer_to_and_what_refers_to_them(linked):
    encounter, observation, report = linked
    of = f"_id={observation.fhir_id}"

    def included(query: str, **kwargs) -> set[int]:
        page = search("Observation", f"{of}&{query}", **kwargs)
        assert pks(page) == [observation.pk]
        return {r.pk for r in page.included}

    assert included("_include=Observation:encounter") == {encounter}
    assert included("_include=Observation:encounter:Encounter") == {encounter}
    assert included("_include=Observation:encounter:Condition") == set()
    assert included("_revinclude=DiagnosticReport:result") == {report}
    both = "_include=Observation:encounter&_revinclude=DiagnosticReport:result"
    assert included(both) == {encounter, report}
    # Query.include_types: what the caller may read; other types are left out, not refused.
    assert included(both, include_types=frozenset({"Observation", "Encounter"})) == {encounter}
    assert included(both, include_types=frozenset({"Observation", "DiagnosticReport"})) == {report}
    assert included(both, include_types=frozenset({"Observation"})) == set()
    Resource.objects.filter(pk=report).update(deleted=True)
    assert included(both) == {encounter}  # a deleted resource is never included


def test_summary_count_answers_the_total_without_matches(linked):
    page = search("Observation", "code=718-7&_summary=count")
    assert (page.total, page.matches, page.included) == (2, [], [])
    assert search("Observation", "code=718-7&_summary=false").total == 2
    assert search("Observation", "code=718-7&_count=1").total == 2  # with_total counts past the page


# --- what is refused ---------------------------------------------------------------------------------------


def test_an_unknown_parameter_is_refused_when_strict_and_reported_when_not(linked):
    with pytest.raises(ResourceError) as caught:
        parsed("Observation", parse("code=718-7&colour=red"))
    assert (caught.value.status, caught.value.code, caught.value.expression) == (400, "not-supported", "colour")
    assert "code" in caught.value.message  # it says what is supported

    q = parsed("Observation", parse("code=718-7&colour=red&patient.identifier=x"), strict=False)
    assert q.ignored == ["colour", "patient.identifier"]
    assert len(resources_search(q).matches) == 2  # the rest applies


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("_count", "²"),
        ("_count", "-1"),
        ("_sort", "code"),
        ("_summary", "text"),
        ("date", "yesterday"),
        ("_lastUpdated", "2024-13"),
        ("patient", "Observation/1"),
        ("encounter", "not a reference"),
        ("_include", "Observation:nothing"),
        ("_include", "Encounter:participant"),
        ("_revinclude", "Questionnaire:subject"),
        ("_cursor", "not-a-cursor"),
        ("code:text", "haemoglobin"),
        ("status:missing", "true"),
    ],
)
def test_a_bad_value_is_refused_naming_its_parameter(db, name, value):
    with pytest.raises(ResourceError) as caught:
        parsed("Observation", [(name, value)])
    assert caught.value.status == 400
    assert caught.value.expression == name
