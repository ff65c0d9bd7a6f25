"""OAuth2 client credentials for source systems (SMART Backend Services style) on django-oauth-toolkit.

A source system's credentials stay where the registry keeps them
(``SourceSystem.client_id`` and its hashed secret): the token endpoint checks
them with ``source_system_authenticate`` and nothing else. DOT's tokens point
at a DOT ``Application``, so one is kept per source system, keyed by the same
client id and created on first use; it holds no usable secret.

Scopes are ``system/<ResourceType|*>.<read|write|*>`` (SMART App Launch v1
scope syntax, the one Backend Services clients send), listed in
``settings.FHIR_SCOPES``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from urllib.parse import unquote_plus

from oauth2_provider.models import AbstractApplication, get_application_model
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.views import TokenView
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from healthplatform.access import ACTIONS, scopes_granting, source_scopes
from healthplatform.client_address import client_address_of
from healthplatform.fhirapi.throttle import ClientAuthThrottled, client_authenticate
from registry.models import SourceSystem
from registry.selectors import source_system_by_client_id
from registry.services import SourceSystemAuthError

logger = logging.getLogger(__name__)

Application = get_application_model()


# Texts of the WWW-Authenticate error_description: RFC 6750 §3 allows printable US-ASCII only
# (so never a translated text), and they must not say which client ids exist.
UNKNOWN_DESCRIPTION = "the access token is unknown, expired or revoked"
INACTIVE_DESCRIPTION = "the source system of this token, or its institution, is deactivated or its secret was rotated"


def scope_within(scope: str, allowed: frozenset[str]) -> bool:
    """Does ``allowed`` grant everything ``scope`` grants? (``system/Observation.read`` is within
    ``system/Observation.*``; ``system/*.read`` only within a scope on every type.)"""
    _, _, rest = scope.partition("/")
    resource_type, _, action = rest.rpartition(".")
    return all(not allowed.isdisjoint(scopes_granting(resource_type, a)) for a in ACTIONS if action in (a, "*"))


def source_system_application_ensure(*, source_system: SourceSystem) -> Application:
    """The DOT application standing for this source system (same client id), created on first use.

    Its secret is a random value hashed and thrown away: the source system's
    secret is checked against the registry only, so no second copy exists.
    get_or_create retries the read when two first token requests race on the
    unique client id.
    """
    application, created = Application.objects.get_or_create(
        client_id=source_system.client_id,
        defaults={
            "name": source_system.client_id,
            "client_type": AbstractApplication.CLIENT_CONFIDENTIAL,
            "authorization_grant_type": AbstractApplication.GRANT_CLIENT_CREDENTIALS,
            "client_secret": secrets.token_urlsafe(32),
            "hash_client_secret": True,
        },
    )
    if created:
        logger.info("oauth application created for source system client=%s", source_system.client_id)
    return application


def token_source_system(access_token) -> SourceSystem | None:
    """The source system a DOT access token was issued to, if the token may still be used.

    Read on every request (one indexed query), so deactivating the source
    system or its institution, or rotating its secret, stops its tokens at
    once rather than when they expire.
    """
    application = access_token.application
    if application is None:
        return None
    source = source_system_by_client_id(application.client_id)
    if source is None or not (source.active and source.institution.active):
        return None
    # A rotation answers a leaked secret; tokens obtained with that secret go with it.
    if source.secret_rotated_at and access_token.created < source.secret_rotated_at:
        return None
    return source


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """client id and secret of an HTTP Basic header value's credentials part, or None if malformed."""
    try:
        decoded = base64.b64decode(header, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    # RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


class SourceSystemOAuth2Validator(OAuth2Validator):
    """DOT's validator, with clients authenticated against the registry's source systems.

    Only confidential clients exist (RFC 6749 §4.4: client credentials are
    for confidential clients), and a bearer token is valid only while its
    source system and institution are active.
    """

    def _client_credentials(self, request) -> tuple[str, str] | None:
        """The client id and secret of a token request, by HTTP Basic or in the form body (RFC 6749 §2.3.1)."""
        basic = self._extract_basic_auth(request)
        body_id = getattr(request, "client_id", None)
        body_secret = getattr(request, "client_secret", None)
        if basic:
            credentials = _basic_credentials(basic)
            # RFC 6749 §2.3: a client MUST NOT use more than one authentication method in a request;
            # a client_id in the body is tolerated only when it names the same client.
            if credentials is None or body_secret or (body_id and body_id != credentials[0]):
                return None
            return credentials
        if body_id and body_secret:
            return body_id, body_secret
        return None

    def authenticate_client(self, request, *args, **kwargs) -> bool:
        credentials = self._client_credentials(request)
        if credentials is None:
            return False
        client_id, secret = credentials
        try:
            # oauthlib's headers are a copy of the Django request's META: the same client address.
            source = client_authenticate(address=client_address_of(request.headers), client_id=client_id, secret=secret)
        except ClientAuthThrottled as exc:
            raise ClientThrottledError(exc.wait) from None
        except SourceSystemAuthError:
            # The reason (unknown, wrong secret, deactivated) is not told to the caller: invalid_client.
            return False
        request.client = source_system_application_ensure(source_system=source)
        request.source_system = source
        return True

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs) -> bool:
        # Beyond DOT's check (known scopes), the registry's allow-list of the source system: a scope
        # outside it is invalid_scope (RFC 6749 §5.2).
        if not super().validate_scopes(client_id, scopes, client, request, *args, **kwargs):
            return False
        allowed = source_scopes(getattr(request, "source_system", None))
        return allowed is None or all(scope_within(scope, allowed) for scope in scopes)

    def get_default_scopes(self, client_id, request, *args, **kwargs):
        # A client that asks for no scope gets what its source system is allowed (or the defaults).
        allowed = source_scopes(getattr(request, "source_system", None))
        return sorted(allowed) if allowed else super().get_default_scopes(client_id, request, *args, **kwargs)

    def authenticate_client_id(self, client_id, request, *args, **kwargs) -> bool:
        # No public clients: a client that does not authenticate gets nothing.
        return False

    def client_authentication_required(self, request, *args, **kwargs) -> bool:
        return True

    def save_bearer_token(self, token, request, *args, **kwargs):
        result = super().save_bearer_token(token, request, *args, **kwargs)
        logger.info(
            "oauth token issued client=%s scope=%s expires_in=%s",
            request.client.client_id,
            token.get("scope", ""),
            token.get("expires_in", ""),
        )
        return result

    def validate_bearer_token(self, token, scopes, request) -> bool:
        if not super().validate_bearer_token(token, scopes, request):
            request.oauth2_error = {"error": "invalid_token", "error_description": UNKNOWN_DESCRIPTION}
            return False
        source = token_source_system(request.access_token)
        if source is None:
            request.oauth2_error = {"error": "invalid_token", "error_description": INACTIVE_DESCRIPTION}
            return False
        request.source_system = source
        return True


class ClientThrottledError(OAuth2Error):
    """429 at the token endpoint: too many failed client authentications (``throttle``). RFC 6749 §5.2 has no
    error code for it; ``temporarily_unavailable`` is the registered code that says "try later" (§4.1.2.1),
    and ``Retry-After`` (RFC 9110 §10.2.3) says when."""

    error = "temporarily_unavailable"
    status_code = 429
    description = "too many failed client authentications; try later"

    def __init__(self, wait: int):
        super().__init__()
        self.wait = wait

    @property
    def headers(self):
        return {
            "Content-Type": "application/json",
            "Retry-After": str(self.wait),
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
        }


class SourceSystemTokenView(TokenView):
    """``POST /oauth/token`` (RFC 6749 §4.4); the validator authenticates the client through the throttle
    (``throttle.client_authenticate``), whose refusal is a 429 ``ClientThrottledError``."""
