"""DetectedIssue: the alerts raised on the orders a feed sent (``healthplatform.alerts``), read-only.

``GET /fhir/DetectedIssue?patient=<source or golden Patient id>`` (also ``code``, ``_id``, ``_count``, keyset
``_cursor``) and ``GET /fhir/DetectedIssue/{id}``. An alert is its ordering institution's: that institution's
source systems read it (with a scope granting DetectedIssue), staff read all, another institution sees nothing
(its search finds none, its read is 404). A DetectedIssue tells the facts its alert rests on and the order it was
raised on, so reading one also needs scopes that grant reading those types (403 naming them otherwise), as CDS
Hooks asks. Alerts are raised by the platform's rules, never written here (405).
"""

from __future__ import annotations

from urllib.parse import urlencode

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from healthplatform.alerts import selectors as alerts
from healthplatform.alerts.cdshooks.hooks import RULE_TYPES
from healthplatform.alerts.evaluate import ORDER_TYPES
from healthplatform.fhirapi import search
from healthplatform.fhirapi.authentication import caller_of
from healthplatform.fhirapi.outcome import FHIRError, invalid_parameter
from healthplatform.fhirapi.permissions import HasFHIRScope, IsAttributable, interaction_action
from healthplatform.fhirapi.resources.bundle import SearchEntry, searchset
from healthplatform.fhirapi.resources.detectedissue import detected_issue, kinds_of_code
from healthplatform.fhirapi.views.base import FHIRView

_FHIR_OBJECT = {(200, "application/fhir+json"): OpenApiTypes.OBJECT}
PARAMETERS = frozenset({"patient", "code", "_id", "_cursor"})
NOT_WRITTEN = "a DetectedIssue is raised by the platform's alert rules on the orders feeds send; it is not written"


# What a DetectedIssue carries of the record: the facts the rules read (in its evidence, implicated and detail)
# and the order (implicated, named in its summary).
ALERT_FACT_TYPES = tuple(sorted({*RULE_TYPES, *ORDER_TYPES}))


class ReadsTheAlertsFacts(BasePermission):
    """The caller may read every type an alert tells of: a token granted DetectedIssue alone would otherwise be
    sent the values, dates and institutions of results and allergies its scopes keep from it."""

    def has_permission(self, request, view) -> bool:
        if interaction_action(request) != "read":
            return True  # a write is refused with 405 by the view
        missing = [t for t in ALERT_FACT_TYPES if not caller_of(request).may_read(t)]
        if missing:
            self.message = (
                "DetectedIssue: an alert tells of the record's " + ", ".join(missing) + ": the token's scopes "
                "(and the source system's allow-list) must grant reading them too (system/*.read)"
            )
            return False
        return True


def _issue_url(request, alert) -> str:
    return request.build_absolute_uri(f"/fhir/DetectedIssue/{alert.uuid}")


def _rendered(rows) -> list[dict]:
    overrides = alerts.overrides_of(rows)
    return [detected_issue(a, overrides.get(a.key, [])) for a in rows]


class DetectedIssueTypeView(FHIRView):
    """``GET /fhir/DetectedIssue?…``."""

    fhir_resource_type = "DetectedIssue"
    permission_classes = [IsAttributable, HasFHIRScope, ReadsTheAlertsFacts]

    @extend_schema(
        operation_id="fhir_detectedissue_search",
        summary="Search the alerts raised on this institution's orders",
        parameters=[
            OpenApiParameter("patient", str, description="Patient/<id> or <id>: a source or golden Patient"),
            OpenApiParameter("code", str, description="system|code: ALGY, DUPTHPY (v3 ActCode) or an alert kind"),
            OpenApiParameter("_id", str),
            OpenApiParameter("_count", int),
            OpenApiParameter("_cursor", str, description="the page cursor of a next link"),
        ],
        responses=_FHIR_OBJECT,
    )
    def get(self, request):
        params = search.search_parameters(request.query_params, PARAMETERS, strict=search.strict_handling(request))
        count = search.count(params.get("_count"))
        person_ids = None
        if patient := params.get("patient"):
            person_ids = alerts.persons_of_patient(patient.rstrip("/").rsplit("/", 1)[-1])
        kinds = None
        if code := params.get("code"):
            kinds = kinds_of_code(*search.token("code", code))
        before = None
        if cursor := params.get("_cursor"):
            before = search.whole_number(cursor)
            if before is None:
                raise invalid_parameter("_cursor", "not a cursor this server gave")
        rows = alerts.alerts_search(
            caller=caller_of(request),
            person_ids=person_ids,
            kinds=kinds,
            alert_id=params.get("_id"),
            before=before,
            limit=count + 1,
        )
        more = len(rows) > count
        rows = rows[:count]
        applied = [(k, v) for k, v in params.values.items() if k not in ("_cursor", "_format")]
        path = request.build_absolute_uri(request.path)
        self_query = [*applied, *([("_cursor", cursor)] if cursor else [])]
        bundle = searchset(
            [SearchEntry(body, _issue_url(request, a)) for a, body in zip(rows, _rendered(rows), strict=True)],
            self_url=f"{path}?{urlencode(self_query)}" if self_query else path,
        )
        if more and rows:
            bundle["link"].append(
                {"relation": "next", "url": f"{path}?{urlencode([*applied, ('_cursor', str(rows[-1].pk))])}"}
            )
        return Response(bundle)

    @extend_schema(exclude=True)
    def post(self, request):
        raise FHIRError.one(405, "not-supported", NOT_WRITTEN)


class DetectedIssueInstanceView(FHIRView):
    """``GET /fhir/DetectedIssue/{id}``."""

    fhir_resource_type = "DetectedIssue"
    permission_classes = [IsAttributable, HasFHIRScope, ReadsTheAlertsFacts]

    @extend_schema(operation_id="fhir_detectedissue_read", summary="Read an alert", responses=_FHIR_OBJECT)
    def get(self, request, id):
        alert = alerts.alert_get(caller=caller_of(request), alert_id=id)
        if alert is None:
            raise FHIRError.one(404, "not-found", f"DetectedIssue/{id} is not known")
        (body,) = _rendered([alert])
        return Response(body)

    @extend_schema(exclude=True)
    def put(self, request, id):
        raise FHIRError.one(405, "not-supported", NOT_WRITTEN)

    delete = put
