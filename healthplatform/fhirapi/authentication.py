"""Who is calling the FHIR API: a registered source system (OAuth2 bearer token or HTTP Basic) or a staff user.

Every request must be attributable to one of them. A source system gets a
bearer token from ``/oauth/token`` (client credentials, see ``oauth``); HTTP
Basic with the same client id and secret is the legacy path and stays.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from oauth2_provider.models import get_access_token_model
from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauth2_provider.settings import oauth2_settings
from rest_framework import exceptions
from rest_framework.authentication import (
    BaseAuthentication,
    BasicAuthentication,
    SessionAuthentication,
    get_authorization_header,
)

from healthplatform.access import Caller
from healthplatform.client_address import client_address
from healthplatform.fhirapi.oauth import UNKNOWN_DESCRIPTION
from healthplatform.fhirapi.throttle import ClientAuthThrottled, client_authenticate
from registry.models import SourceSystem
from registry.services import SourceSystemAuthError

REALM = "fhir"

AccessToken = get_access_token_model()


@dataclass(frozen=True)
class SourceSystemClient:
    """``request.user`` of a source system's request: enough of Django's user protocol for DRF and the logs."""

    source: SourceSystem

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    @property
    def username(self) -> str:
        return self.source.client_id

    @property
    def pk(self) -> str:
        return self.source.client_id

    def get_username(self) -> str:
        return self.source.client_id


def client_name(user) -> str:
    """What the access log and the audit call the caller: the source system's client id or the username."""
    if user is None or not getattr(user, "is_authenticated", False):
        return "-"
    return user.get_username()


def caller_of(request) -> Caller:
    """The request's caller for the corridors: its source system (with the token's scopes, for a bearer
    token) or the staff user. Made once per request."""
    caller = getattr(request, "_platform_caller", None)
    if caller is None:
        source = getattr(request.user, "source", None)
        caller = Caller(source, client_name(request.user), bearer_scopes(request))
        request._platform_caller = caller
    return caller


class SourceSystemBasicAuthentication(BasicAuthentication):
    """HTTP Basic with a registered source system's client id and secret (``registry.SourceSystem``)."""

    www_authenticate_realm = REALM

    def authenticate_credentials(self, userid, password, request=None):
        address = client_address(request) if request is not None else None
        try:
            source = client_authenticate(address=address, client_id=userid, secret=password)
        except ClientAuthThrottled as exc:
            raise exceptions.Throttled(exc.wait, "too many failed authentications: try later") from None
        except SourceSystemAuthError as exc:
            raise exceptions.AuthenticationFailed(f"HTTP Basic: {exc}") from None
        return SourceSystemClient(source), source


class SourceSystemBearerAuthentication(BaseAuthentication):
    """An OAuth2 bearer token (RFC 6750) that ``/oauth/token`` issued to a source system.

    ``request.user`` is the token's ``SourceSystemClient`` and ``request.auth``
    the DOT ``AccessToken`` (its scopes: ``bearer_scopes``). A request with no
    bearer token is left to the other classes; one with a bad token is refused
    here (RFC 6750 §3.1 ``invalid_token``) rather than tried as something else.
    """

    www_authenticate_realm = REALM

    def authenticate(self, request):
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower() != b"bearer":
            return None
        # The Django request: DOT reads form bodies through request.POST, which on DRF's
        # request would parse (and reject) a FHIR body before the view negotiated it.
        valid, oauth_request = get_oauthlib_core().verify_request(request._request, scopes=[])
        if not valid:
            error = getattr(oauth_request, "oauth2_error", None) or {}
            request._bearer_error = {
                "error": "invalid_token",
                "error_description": error.get("error_description") or UNKNOWN_DESCRIPTION,
            }
            raise exceptions.AuthenticationFailed(f"Bearer token: {request._bearer_error['error_description']}")
        return SourceSystemClient(oauth_request.source_system), oauth_request.access_token

    def authenticate_header(self, request):
        # RFC 6750 §3: no error attributes when the request carried no token at all.
        error = getattr(request, "_bearer_error", None)
        header = f'Bearer realm="{self.www_authenticate_realm}"'
        if error:
            header += f', error="{error["error"]}", error_description="{error["error_description"]}"'
        return header


def bearer_scopes(request) -> frozenset[str] | None:
    """The scopes granted to this request's bearer token; None if the request is not a bearer token's."""
    token = getattr(request, "auth", None)
    if isinstance(token, AccessToken):
        return frozenset(token.scope.split())
    return None


class StaffSessionAuthentication(SessionAuthentication):
    """A logged-in Django staff user's session (the viewer and the admin call the API this way).

    A session of a user who is not staff is not a credential here: the request
    stays anonymous and gets 401. CSRF is enforced on unsafe methods, as for
    every session-authenticated DRF view.
    """

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None or not result[0].is_staff:
            return None
        return result


class SourceSystemBasicScheme(OpenApiAuthenticationExtension):
    target_class = SourceSystemBasicAuthentication
    name = "sourceSystemBasic"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "basic",
            "description": "A registered source system's client id and secret.",
        }


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = StaffSessionAuthentication
    name = "staffSession"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}


class SourceSystemBearerScheme(OpenApiAuthenticationExtension):
    target_class = SourceSystemBearerAuthentication
    name = "sourceSystemOAuth2"

    def get_security_definition(self, auto_schema):
        return {
            "type": "oauth2",
            "description": (
                "SMART Backend Services style: a registered source system obtains a bearer token with the "
                "client credentials grant (its client id and secret by HTTP Basic or in the form body)."
            ),
            "flows": {
                "clientCredentials": {"tokenUrl": reverse("oauth2-token"), "scopes": dict(oauth2_settings.SCOPES)}
            },
        }
