"""Root URLs: the admin, health check, the FHIR API, and the API description."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from healthplatform.views import healthz

admin.site.site_header = "区域健康信息平台 · Regional health information platform"
admin.site.site_title = "区域健康信息平台"
admin.site.index_title = "平台管理 · Administration"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("fhir/", include("healthplatform.fhirapi.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
]
