"""PIXm: Mobile Patient Identifier Cross-reference Query (ITI-83), ``GET /fhir/Patient/$ihe-pix``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from healthplatform.fhirapi import search
from healthplatform.fhirapi.outcome import FHIRError, Issue, invalid_parameter
from healthplatform.fhirapi.views.base import FHIRView
from mpi import selectors as mpi_selectors
from mpi.selectors import (
    PERSON_SYSTEM,
    authority_of_system,
    identifier_kind_for_system,
    identifier_systems,
    pix_cross_reference,
    system_of_authority,
)

PIX_PARAMETERS = frozenset({"sourceIdentifier", "targetSystem", "_format"})


def _domain(system: str) -> tuple[str, str]:
    """The identity domain a system names, so that ``urn:oid:1.2.3`` and ``1.2.3`` are one domain."""
    if system == PERSON_SYSTEM:
        return ("person", "")
    kind = identifier_kind_for_system(system)
    if kind:
        return ("document", kind)
    return ("authority", authority_of_system(system))


def _recognised(system: str) -> bool:
    """A document system of the region, the platform's person ids, or an authority some identity was registered
    under."""
    kind, _ = _domain(system)
    return kind != "authority" or mpi_selectors.assigning_authority_known(system)


def _source_identifier(request) -> tuple[str, str]:
    values = request.query_params.getlist("sourceIdentifier")
    if len(values) != 1:
        # ITI-83 §3.83.4.1.2: exactly one sourceIdentifier.
        raise invalid_parameter("sourceIdentifier", "exactly one is required (system|value)", code="required")
    system, sep, value = values[0].partition("|")
    system, value = system.strip(), value.strip()
    if not (sep and system and value):
        # ITI-83 §3.83.4.1.2: both the assigning authority and the value shall be valued.
        raise invalid_parameter("sourceIdentifier", "both the system (assigning authority) and the value are required")
    return system, value


def _target_systems(request) -> list[str]:
    systems = []
    for value in request.query_params.getlist("targetSystem"):
        systems.extend(s.strip() for s in value.split(",") if s.strip())
    return list(dict.fromkeys(systems))


class PatientPIXView(FHIRView):
    """Every identifier of the person behind ``sourceIdentifier``, in the requested domains, and the person."""

    fhir_resource_type = "Patient"

    @extend_schema(
        operation_id="fhir_patient_ihe_pix",
        summary="PIXm identifier cross-reference (ITI-83)",
        parameters=[
            OpenApiParameter("sourceIdentifier", str, required=True, description="system|value"),
            OpenApiParameter("targetSystem", str, many=True, description="identity domains to return"),
        ],
        responses={(200, "application/fhir+json"): OpenApiTypes.OBJECT},
    )
    def get(self, request):
        if search.strict_handling(request):
            unknown = [name for name in request.query_params if name not in PIX_PARAMETERS]
            if unknown:
                raise FHIRError(400, [Issue("not-supported", f"{n}: unknown parameter", (n,)) for n in unknown])
        system, value = _source_identifier(request)
        targets = _target_systems(request)
        # The failure cases of ITI-83 §3.83.4.2.2, with their exact status, code and text.
        if not _recognised(system):
            raise FHIRError.one(
                400, "code-invalid", "sourceIdentifier Assigning Authority not found", expression="sourceIdentifier"
            )
        if any(not _recognised(t) for t in targets):
            raise FHIRError.one(403, "code-invalid", "targetSystem not found", expression="targetSystem")
        xref = pix_cross_reference(system, value)
        if xref is None:
            raise FHIRError.one(
                404, "not-found", "sourceIdentifier Patient Identifier not found", expression="sourceIdentifier"
            )

        systems = identifier_systems()
        identifiers = [(PERSON_SYSTEM, str(xref.person.uuid))]
        identifiers += [(systems[d.kind], d.value) for d in xref.documents if d.kind in systems]
        identifiers += [(system_of_authority(i.assigning_authority), i.local_id) for i in xref.identities]
        wanted = {_domain(t) for t in targets}
        parameters = [
            {"name": "targetIdentifier", "valueIdentifier": {"system": s, "value": v}}
            for s, v in dict.fromkeys(identifiers)
            if not wanted or _domain(s) in wanted
        ]
        parameters.append({"name": "targetId", "valueReference": {"reference": f"Patient/{xref.person.uuid}"}})
        return Response({"resourceType": "Parameters", "parameter": parameters})
