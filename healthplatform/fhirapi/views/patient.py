"""Patient endpoints of the MPI: PDQm search (ITI-78), read, and $match (ITI-119)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from healthplatform.fhirapi import search
from healthplatform.fhirapi.match import GRADE_ORDER, match_request, normalised_score
from healthplatform.fhirapi.outcome import FHIRError, invalid_parameter
from healthplatform.fhirapi.resources.bundle import SearchEntry, searchset
from healthplatform.fhirapi.resources.patient import FHIR_GENDERS, patient_resource
from healthplatform.fhirapi.views.base import FHIRView
from mpi import selectors as mpi_selectors
from mpi.demographics import DemographicsError
from mpi.models import Person
from mpi.selectors import person_match, person_search, person_search_count

PDQM_PARAMETERS = frozenset({"identifier", "family", "given", "name", "birthdate", "gender"})
# The most persons a Patient search counts (_summary=count): beyond it the criteria are too broad to be a
# patient query, and counting them would read the whole index.
TOTAL_LIMIT = 1_000
_FHIR_OBJECT = {(200, "application/fhir+json"): OpenApiTypes.OBJECT}


def _patient_url(request, person: Person) -> str:
    return request.build_absolute_uri(reverse("fhirapi:patient-read", kwargs={"id": str(person.uuid)}))


class PatientSearchView(FHIRView):
    """``GET /fhir/Patient?…``: one Patient per matching person (golden record), in a searchset Bundle."""

    fhir_resource_type = "Patient"

    @extend_schema(
        operation_id="fhir_patient_search",
        summary="PDQm Patient search (ITI-78)",
        parameters=[
            OpenApiParameter("identifier", str, description="system|value, or value in any system"),
            OpenApiParameter("family", str),
            OpenApiParameter("given", str),
            OpenApiParameter("name", str),
            OpenApiParameter("birthdate", str, description="YYYY-MM-DD, optionally prefixed eq"),
            OpenApiParameter("gender", str, enum=list(FHIR_GENDERS)),
            OpenApiParameter("_count", int),
            OpenApiParameter("_summary", str, enum=["count"], description="count: only Bundle.total"),
        ],
        responses=_FHIR_OBJECT,
    )
    def get(self, request):
        strict = search.strict_handling(request)
        params = search.search_parameters(request.query_params, PDQM_PARAMETERS | {"_summary"}, strict=strict)
        criteria: dict = {}
        if (value := params.get("identifier")) is not None:
            criteria["identifier"] = search.token("identifier", value)
        for name in ("family", "given", "name"):
            if value := (params.get(name) or "").strip():
                criteria[name] = value
        if (value := params.get("birthdate")) is not None:
            criteria["birthdate"] = search.date_eq("birthdate", value)
        if (value := params.get("gender")) is not None:
            if value not in FHIR_GENDERS:
                raise invalid_parameter("gender", f"expected one of {', '.join(FHIR_GENDERS)}", code="code-invalid")
            criteria["gender"] = value
        if not criteria:
            # Listing every resident is not a query a source system needs, and not one to answer.
            raise FHIRError.one(
                400, "required", f"a Patient search needs at least one of {', '.join(sorted(PDQM_PARAMETERS))}"
            )
        count = search.count(params.get("_count"))
        only_total = search.summary_count(params, strict=strict)
        applied = {k: v for k, v in params.values.items() if k != "_format"}
        self_url = request.build_absolute_uri(request.path) + ("?" + urlencode(applied) if applied else "")
        # "|value" asks for an identifier without a system; every identifier here has one.
        nothing = criteria.get("identifier", (None,))[0] == ""
        # R4 search.html#count: _count=0 is answered like _summary=count, the total only.
        if only_total or count == 0:
            total = 0 if nothing else person_search_count(**criteria, limit=TOTAL_LIMIT)
            if total > TOTAL_LIMIT:
                raise FHIRError.one(
                    400,
                    "too-costly",
                    f"_summary: more than {TOTAL_LIMIT:,} persons match; narrow the search to count them",
                    expression="_summary" if only_total else "_count",
                )
            return Response(searchset([], self_url=self_url, total=total))
        persons = [] if nothing else person_search(**criteria, limit=count)
        entries = [SearchEntry(patient_resource(p), _patient_url(request, p)) for p in persons]
        return Response(searchset(entries, self_url=self_url))


class PatientReadView(FHIRView):
    """``GET /fhir/Patient/{id}``: a person; a merged one as inactive, linked to its survivor."""

    fhir_resource_type = "Patient"

    @extend_schema(operation_id="fhir_patient_read", summary="Read a Patient (golden record)", responses=_FHIR_OBJECT)
    def get(self, request, id):
        person = mpi_selectors.person_get(id)
        if person is None:
            raise FHIRError.one(404, "not-found", f"Patient/{id} is not known")
        replaced_by = mpi_selectors.survivor_of(person) if person.status == Person.Status.MERGED else None
        return Response(patient_resource(person, replaced_by=replaced_by))


class PatientMatchView(FHIRView):
    """``POST /fhir/Patient/$match``: persons scored against a Patient, best first, with score and grade.

    Nothing is registered. Candidates graded ``certainly-not`` are left out:
    they are known not to be the patient, and listing them would only show
    other residents' records to the caller.
    """

    fhir_resource_type = "Patient"

    @extend_schema(
        operation_id="fhir_patient_match",
        summary="PDQm $match (ITI-119)",
        request={"application/fhir+json": OpenApiTypes.OBJECT},
        responses=_FHIR_OBJECT,
    )
    def post(self, request):
        wanted = match_request(request.data, strict=search.strict_handling(request))
        try:
            results = person_match(
                wanted.demographics, count=wanted.count, only_certain=wanted.only_certain, local_ids=wanted.local_ids
            )
        except DemographicsError as exc:
            raise FHIRError.one(400, "invalid", f"Parameters.parameter.resource: {exc}") from exc
        results = sorted(
            (r for r in results if r.grade != "certainly-not"),
            key=lambda r: (GRADE_ORDER.get(r.grade, len(GRADE_ORDER)), -r.score),
        )
        persons = mpi_selectors.persons_in_bulk([r.person.pk for r in results])
        entries = [
            SearchEntry(
                patient_resource(persons[r.person.pk]),
                _patient_url(request, r.person),
                score=normalised_score(r.score),
                grade=r.grade,
            )
            for r in results
            if r.person.pk in persons
        ]
        return Response(searchset(entries, total=len(entries)))
