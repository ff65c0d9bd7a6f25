"""The patient page's content, from one read of the person's record (``healthplatform.record.person_record``):
the banner, the sections, the laboratory table with its trend charts, the documents — filtered by institution
and period, each section its latest ``SECTION_ROWS`` rows unless the clinician asks for all of one.

Everything here works on what the record read returned: no query per fact, so the page costs the same few
queries for a resident with ten facts or two thousand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from healthplatform.viewer.charts import chart_svg, trend_chart
from healthplatform.viewer.documents import content_kind
from healthplatform.viewer.facts import ACTIVE_CONDITIONS, ACTIVE_MEDICATIONS, Fact, fact_of, reading_now
from registry.selectors import SourceInstitution

SECTION_ROWS = 20
# Trend charts drawn on one page: the tests with the most numeric results first.
MAX_CHARTS = 12
# A test's results read for its trend: the latest ones (a chart of years of weekly results is unreadable, and a
# record of thousands of results would be read in full for every page).
CHART_POINTS = 100
MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement", "MedicationDispense")
OTHER_TYPES = ("Procedure", "Immunization", "ServiceRequest")


def mask_number(value: str) -> str:
    """An identity or card number with all but its first and last four characters hidden
    (4401**********123X)."""
    value = value or ""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def age_on(birth: dt.date | None, day: dt.date) -> int | None:
    if birth is None:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


@dataclass
class Filters:
    """What the clinician narrowed the page to: one institution (its code), a period (inclusive days), and
    the one section shown in full."""

    institution: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    show: str = ""

    @property
    def active(self) -> bool:
        return bool(self.institution or self.date_from or self.date_to)

    def keeps(self, institution_code: str, when: dt.datetime | None) -> bool:
        if self.institution and institution_code != self.institution:
            return False
        if not (self.date_from or self.date_to):
            return True
        if when is None:
            return False
        day = timezone.localtime(when).date()
        if self.date_from and day < self.date_from:
            return False
        return not (self.date_to and day > self.date_to)


def filters_read(query) -> Filters:
    """The filters of a GET query (bad dates are ignored rather than refused: a filter only narrows)."""

    def day(name: str) -> dt.date | None:
        try:
            return dt.date.fromisoformat(query.get(name, "")) if query.get(name) else None
        except ValueError:
            return None

    return Filters(
        institution=query.get("institution", "")[:18],
        date_from=day("from"),
        date_to=day("to"),
        show=query.get("show", "")[:20],
    )


@dataclass
class Rows:
    """One section: its rows (the latest first, cut to ``SECTION_ROWS`` unless shown in full) and how many
    there are in all."""

    key: str
    title: str
    rows: list = field(default_factory=list)
    total: int = 0

    @property
    def more(self) -> int:
        return self.total - len(self.rows)


@dataclass
class LabTest:
    """One test (by its standard code) across institutions: its results, newest first, and its trend."""

    display: object
    results: list[Fact]  # the latest CHART_POINTS
    count: int = 0  # every result of the test on the page
    chart: object = None

    @property
    def latest(self) -> Fact:
        return self.results[0]


@dataclass
class DocumentRow:
    entry: object
    institution: SourceInstitution | None
    kind: str


@dataclass
class PatientPage:
    """Everything the patient page shows of one person's record."""

    person: object
    banner: dict
    institutions: list[tuple[str, str]]  # (code, name) of every institution that knows the person or sent a fact
    sections: dict[str, Rows]
    lab_tests: list[LabTest]
    documents: Rows
    facts_total: int
    facts_shown: int
    truncated: bool

    @property
    def empty(self) -> bool:
        return self.facts_total == 0 and not self.documents.total


def _cut(key: str, title, rows: list, filters: Filters) -> Rows:
    shown = rows if filters.show == key else rows[:SECTION_ROWS]
    return Rows(key, str(title), shown, len(rows))


def point_label(fact: Fact) -> str:
    when = timezone.localtime(fact.when).strftime("%Y-%m-%d") if fact.when else ""
    place = fact.institution.name if fact.institution else ""
    return f"{fact.value} {fact.unit} · {when} · {place}".strip()


def patient_page(record, *, institutions: dict[int, SourceInstitution], filters: Filters, today: dt.date):
    """The page of one record read (``RecordPage``, first page) under ``filters``."""
    person = record.person
    reading = reading_now()
    floor = dt.datetime.min.replace(tzinfo=dt.UTC)

    def when(resource):
        return resource.effective_low or resource.last_updated or floor

    def code_of(resource) -> str:
        institution = institutions.get(resource.source_id) if resource.source_id else None
        return institution.code if institution else ""

    # Sorted, filtered and grouped on the rows' own columns (date, source, status); a resource's JSON is read
    # only for the rows a section shows, and for every laboratory result (the tests and their trends).
    kept = sorted(
        (r for r in record.facts if filters.keeps(code_of(r), r.effective_low or r.last_updated)),
        key=when,
        reverse=True,
    )
    by_type: dict[str, list] = {}
    for resource in kept:
        by_type.setdefault(resource.resource_type, []).append(resource)

    def rows(key: str, title, resources: list) -> Rows:
        shown = resources if filters.show == key else resources[:SECTION_ROWS]
        return Rows(key, str(title), [fact_of(r, institutions, reading) for r in shown], len(resources))

    medications = sorted((r for t in MEDICATION_TYPES for r in by_type.get(t, [])), key=when, reverse=True)
    active_medications = [
        r for r in medications if r.resource_type != "MedicationDispense" and r.status in ACTIVE_MEDICATIONS
    ]
    past_medications = [
        r for r in medications if not (r.resource_type != "MedicationDispense" and r.status in ACTIVE_MEDICATIONS)
    ]
    conditions = by_type.get("Condition", [])
    observations = by_type.get("Observation", [])
    results = rows("results", _("Laboratory results"), observations)
    sections = {
        "allergies": rows("allergies", _("Allergies and intolerances"), by_type.get("AllergyIntolerance", [])),
        "active_medications": rows("active_medications", _("Active medications"), active_medications),
        "past_medications": rows("past_medications", _("Past medications"), past_medications),
        "problems": rows("problems", _("Problems"), [r for r in conditions if r.status in ACTIVE_CONDITIONS]),
        "diagnoses": rows(
            "diagnoses", _("Past diagnoses"), [r for r in conditions if r.status not in ACTIVE_CONDITIONS]
        ),
        "encounters": rows("encounters", _("Encounters across institutions"), by_type.get("Encounter", [])),
        "results": results,
        "reports": rows("reports", _("Imaging and exam reports"), by_type.get("DiagnosticReport", [])),
        "other": rows(
            "other",
            _("Procedures, immunizations and orders"),
            sorted((r for t in OTHER_TYPES for r in by_type.get(t, [])), key=when, reverse=True),
        ),
    }

    # Results grouped by test on the code alone (one display per distinct concept, see Reading); only the
    # latest CHART_POINTS of each test are read in full.
    uncoded = str(_("(not coded)"))
    by_test: dict[tuple, list] = {}
    for resource in observations:
        shown = reading.display(resource.code)
        key = (shown.key or ("", shown.text)) if shown.text else ("", uncoded)
        by_test.setdefault(key, []).append(resource)
    tests: dict[tuple, LabTest] = {}
    for key, resources in by_test.items():
        facts = [fact_of(r, institutions, reading) for r in resources[:CHART_POINTS]]
        tests[key] = LabTest(facts[0].display, facts, len(resources))
    lab_tests = sorted(tests.values(), key=lambda t: t.latest.when or dt.datetime.min.replace(tzinfo=dt.UTC))
    lab_tests.reverse()
    charted = sorted(
        (t for t in lab_tests if sum(1 for f in t.results if f.number is not None) >= 2),
        key=lambda t: -t.count,
    )[:MAX_CHARTS]
    for test in charted:
        test.chart = trend_chart(test.results, label_of=point_label)
        if test.chart is not None:
            test.chart.svg = chart_svg(
                test.chart,
                label=gettext("Trend of %(name)s") % {"name": test.display.text},
                range_label=f"{gettext('reference range')} {test.latest.reference_range}",
            )

    documents = []
    for entry in record.documents:
        institution = institutions.get(entry.source_id)
        if filters.keeps(institution.code if institution else "", entry.date):
            documents.append(DocumentRow(entry, institution, content_kind(entry.content_type)))

    known: dict[str, str] = {}
    for identity in record.identities:
        institution = institutions.get(identity.source_id) if identity.source_id else None
        if institution is not None:
            known.setdefault(institution.code, institution.name)
        else:
            known.setdefault(identity.assigning_authority, identity.assigning_authority)
    senders = {}
    for source_id in {r.source_id for r in record.facts if r.source_id}:
        institution = institutions.get(source_id)
        if institution is not None:
            senders[institution.code] = institution.name
    listed = list(known.items()) + sorted((c, n) for c, n in senders.items() if c not in known)

    banner = {
        "name": person.name,
        "sex": person.get_sex_display() if person.sex else "",
        "birth_date": person.birth_date,
        "age": age_on(person.birth_date, today),
        "resident_id": mask_number(person.resident_id),
        "health_card": mask_number(person.health_card),
        "known_at": list(known.values()),
    }
    return PatientPage(
        person=person,
        banner=banner,
        institutions=listed,
        sections=sections,
        lab_tests=lab_tests if filters.show == "tests" else lab_tests[:SECTION_ROWS],
        documents=_cut("documents", _("Shared documents"), documents, filters),
        facts_total=len(record.facts),
        facts_shown=len(kept),
        truncated=record.next_after is not None,
    )
