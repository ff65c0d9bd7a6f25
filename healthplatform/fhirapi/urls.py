"""URLs of the FHIR API, mounted at ``/fhir/`` (the FHIR base)."""

from django.urls import path, re_path

from healthplatform.fhirapi.views import directory
from healthplatform.fhirapi.views.base import UnknownEndpointView
from healthplatform.fhirapi.views.patient import PatientMatchView, PatientReadView, PatientSearchView
from healthplatform.fhirapi.views.pix import PatientPIXView

app_name = "fhirapi"

urlpatterns = [
    path("Patient", PatientSearchView.as_view(), name="patient-search"),
    # Operations as regexes with an escaped "$": path() routes lose the "$" in the OpenAPI description.
    re_path(r"^Patient/\$match$", PatientMatchView.as_view(), name="patient-match"),
    re_path(r"^Patient/\$ihe-pix$", PatientPIXView.as_view(), name="patient-pix"),
    # FHIR ids: [A-Za-z0-9\-\.]{1,64} (R4 datatypes.html#id).
    re_path(r"^Patient/(?P<id>[A-Za-z0-9\-.]{1,64})$", PatientReadView.as_view(), name="patient-read"),
    *directory.urlpatterns,  # Organization, Practitioner, Location (mCSD)
    re_path(r"^.*$", UnknownEndpointView.as_view(), name="unknown"),
]
