"""Root URLs: the admin, health check, the FHIR API and its OAuth2 token endpoint, the CDS Hooks services, and the
API description with its page."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from healthplatform.fhirapi.authentication import (
    SourceSystemBasicAuthentication,
    SourceSystemBearerAuthentication,
    StaffSessionAuthentication,
)
from healthplatform.fhirapi.oauth import SourceSystemTokenView
from healthplatform.fhirapi.openapi import SchemaReadable
from healthplatform.fhirapi.views.bundle import BareBaseView
from healthplatform.fhirapi.views.hl7v2 import HL7v2AcksView, HL7v2View
from healthplatform.fhirapi.views.smart import smart_configuration_view
from healthplatform.views import healthz

admin.site.site_header = "区域健康信息平台 · Regional health information platform"
admin.site.site_title = "区域健康信息平台"
admin.site.index_title = "平台管理 · Administration"

# A request Django refuses before routing it (e.g. DisallowedHost) is answered in FHIR under /fhir/.
handler400 = "healthplatform.views.bad_request"

_SCHEMA_ACCESS = {
    "authentication_classes": [
        SourceSystemBearerAuthentication,
        SourceSystemBasicAuthentication,
        StaffSessionAuthentication,
    ],
    "permission_classes": [SchemaReadable],
}

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    # POST [base] with the base as clients spell it, without the slash too: APPEND_SLASH would answer it with a
    # 301, which clients follow as a GET, losing the Bundle (R4 http.html#transaction). Every other path under
    # /fhir/ resolves (fhirapi.urls ends in a catch-all), so no FHIR request is ever redirected.
    path("fhir", BareBaseView.as_view(), name="fhir-base"),
    path("fhir/", include("healthplatform.fhirapi.urls")),
    path("hl7v2", HL7v2View.as_view(), name="hl7v2"),
    path("hl7v2/acks", HL7v2AcksView.as_view(), name="hl7v2-acks"),
    path("viewer/", include("healthplatform.viewer.urls")),
    path("", include("healthplatform.alerts.urls")),  # CDS Hooks 2.0: /cds-services
    # Only DOT's token endpoint (client credentials for source systems): no authorize, application
    # management or introspection pages; source systems are registered in the admin's registry.
    path("oauth/token", SourceSystemTokenView.as_view(), name="oauth2-token"),
    # SMART Backend Services discovery at the origin too (also under /fhir/, where SMART has clients look).
    path(".well-known/smart-configuration", smart_configuration_view, name="smart-configuration"),
    # The API's description and its page (Swagger UI, its assets from drf-spectacular-sidecar under /static/:
    # hospital networks reach no CDN), for the API's own callers unless API_SCHEMA_PUBLIC.
    path("api/schema/", SpectacularAPIView.as_view(**_SCHEMA_ACCESS), name="openapi-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="openapi-schema", **_SCHEMA_ACCESS), name="api-docs"),
]
