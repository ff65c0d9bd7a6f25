"""The clinician viewer's URLs (mounted at /viewer/)."""

from django.urls import path
from django.views.generic import RedirectView
from django.views.i18n import set_language

from healthplatform.viewer import views

app_name = "viewer"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="viewer:search", permanent=False), name="home"),
    path("login/", views.ClinicianLoginView.as_view(), name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("language/", set_language, name="language"),
    path("search/", views.search, name="search"),
    path("patient/<uuid:person_uuid>/", views.patient, name="patient"),
    path("patient/<uuid:person_uuid>/reason/", views.reason, name="reason"),
    path("patient/<uuid:person_uuid>/alerts/override/", views.alert_override, name="alert-override"),
    path("patient/<uuid:person_uuid>/fact/<str:resource_type>/<str:fhir_id>/", views.fact, name="fact"),
    path("patient/<uuid:person_uuid>/document/<uuid:document_id>/", views.document, name="document"),
    path(
        "patient/<uuid:person_uuid>/document/<uuid:document_id>/content",
        views.document_content,
        name="document-content",
    ),
]
