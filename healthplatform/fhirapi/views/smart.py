"""SMART Backend Services discovery: ``GET /.well-known/smart-configuration`` (at the site root and under the FHIR
base: SMART App Launch 2.x conformance.html has clients look under the FHIR base; some look at the origin)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_safe


def token_endpoint(request: HttpRequest) -> str:
    """The token endpoint's absolute URL as this request reached us: the host asked, and https when the TLS proxy
    says so (``SECURE_PROXY_SSL_HEADER``), so a client behind the proxy is given a URL it can use."""
    return request.build_absolute_uri(reverse("oauth2-token"))


@require_safe
def smart_configuration_view(request: HttpRequest) -> JsonResponse:
    """Served to anyone (a client reads it before it has a token), as ``application/json`` (not FHIR JSON: it is
    not a resource); other methods are 405 with ``Allow``."""
    from healthplatform.fhirapi.resources.capability import smart_configuration

    return JsonResponse(smart_configuration(token_endpoint(request)))
