"""URLs of the CDS services at ``/cds-services`` (CDS Hooks 2.0: ``{baseUrl}/cds-services``), included at the root."""

from django.urls import path, re_path

from healthplatform.alerts.cdshooks.views import DiscoveryView, FeedbackView, ServiceView, UnknownView

app_name = "cdshooks"

urlpatterns = [
    path("cds-services", DiscoveryView.as_view(), name="discovery"),
    path("cds-services/<str:service_id>", ServiceView.as_view(), name="service"),
    path("cds-services/<str:service_id>/feedback", FeedbackView.as_view(), name="feedback"),
    # Anything else under /cds-services answers JSON too, never an HTML page.
    re_path(r"^cds-services/[\s\S]*$", UnknownView.as_view(), name="unknown"),
]
