"""URLs of the FHIR API, mounted at ``/fhir/`` (the FHIR base)."""

from django.urls import path, re_path

from ehr.indexing import CLINICAL_TYPES
from healthplatform.fhirapi.views import directory
from healthplatform.fhirapi.views.audit import AuditEventReadView, AuditEventSearchView
from healthplatform.fhirapi.views.base import NoTypeInteractionView, UnknownEndpointView
from healthplatform.fhirapi.views.bundle import BundleView
from healthplatform.fhirapi.views.detectedissue import DetectedIssueInstanceView, DetectedIssueTypeView
from healthplatform.fhirapi.views.documents import (
    BinaryView,
    DocumentReferenceHistoryView,
    DocumentReferenceInstanceView,
    DocumentReferenceTypeView,
    DocumentReferenceVersionView,
)
from healthplatform.fhirapi.views.patient import PatientMatchView
from healthplatform.fhirapi.views.pix import PatientPIXView
from healthplatform.fhirapi.views.resources import (
    MetadataView,
    PatientEverythingView,
    PatientInstanceView,
    PatientTypeView,
    ResourceHistoryView,
    ResourceInstanceView,
    ResourceTypeView,
    ResourceVersionView,
)
from healthplatform.fhirapi.views.smart import smart_configuration_view

app_name = "fhirapi"

# FHIR ids: [A-Za-z0-9\-\.]{1,64} (R4 datatypes.html#id).
ID = r"(?P<id>[A-Za-z0-9\-.]{1,64})"
CLINICAL = r"(?P<type>" + "|".join(CLINICAL_TYPES) + ")"
ARCHIVED = r"(?P<type>Patient|" + "|".join(CLINICAL_TYPES) + ")"

urlpatterns = [
    path("", BundleView.as_view(), name="base"),
    path("metadata", MetadataView.as_view(), name="metadata"),
    path(".well-known/smart-configuration", smart_configuration_view, name="smart-configuration"),
    path("Patient", PatientTypeView.as_view(), name="patient-search"),
    # Operations as regexes with an escaped "$": path() routes lose the "$" in the OpenAPI description.
    re_path(r"^Patient/\$match$", PatientMatchView.as_view(), name="patient-match"),
    re_path(r"^Patient/\$ihe-pix$", PatientPIXView.as_view(), name="patient-pix"),
    re_path(rf"^Patient/{ID}$", PatientInstanceView.as_view(), name="patient-read"),
    re_path(rf"^Patient/{ID}/\$everything$", PatientEverythingView.as_view(), name="patient-everything"),
    path("DocumentReference", DocumentReferenceTypeView.as_view(), name="document-search"),
    re_path(rf"^DocumentReference/{ID}$", DocumentReferenceInstanceView.as_view(), name="document-read"),
    re_path(rf"^DocumentReference/{ID}/_history$", DocumentReferenceHistoryView.as_view(), name="document-history"),
    re_path(
        rf"^DocumentReference/{ID}/_history/(?P<vid>[0-9]{{1,9}})$",
        DocumentReferenceVersionView.as_view(),
        name="document-vread",
    ),
    re_path(rf"^Binary/{ID}$", BinaryView.as_view(), name="binary-read"),
    re_path(r"^(?P<type>Binary)$", NoTypeInteractionView.as_view(), name="binary-type"),
    # The audit of reads (IHE BALP), for the platform's staff.
    path("AuditEvent", AuditEventSearchView.as_view(), name="audit-search"),
    re_path(rf"^AuditEvent/{ID}$", AuditEventReadView.as_view(), name="audit-read"),
    # The alerts raised on the orders feeds send (healthplatform.alerts), read-only.
    path("DetectedIssue", DetectedIssueTypeView.as_view(), name="detectedissue-search"),
    re_path(rf"^DetectedIssue/{ID}$", DetectedIssueInstanceView.as_view(), name="detectedissue-read"),
    re_path(rf"^{CLINICAL}$", ResourceTypeView.as_view(), name="type"),
    re_path(rf"^{CLINICAL}/{ID}$", ResourceInstanceView.as_view(), name="instance"),
    re_path(rf"^{ARCHIVED}/{ID}/_history$", ResourceHistoryView.as_view(), name="history"),
    re_path(rf"^{ARCHIVED}/{ID}/_history/(?P<vid>[0-9]{{1,9}})$", ResourceVersionView.as_view(), name="vread"),
    *directory.urlpatterns,  # Organization, Practitioner, Location (mCSD)
    # [\s\S], not ".": a path with an encoded newline must get an OperationOutcome too, not an HTML page.
    re_path(r"^[\s\S]*$", UnknownEndpointView.as_view(), name="unknown"),
]
