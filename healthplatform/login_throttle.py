"""Password logins (the clinician viewer's and the admin's, both through ``django.contrib.auth.authenticate``)
share the source systems' throttle of failed authentications (``healthplatform.fhirapi.throttle``): after
``AUTH_FAILURES_MAX`` failures from one address within ``AUTH_FAILURE_WINDOW_SECONDS`` that address is refused
before any password is hashed. A clinician's password opens every resident's record (with a stated reason): it
must not be guessed at line speed either. Counted per address, never per username (anyone could lock a
clinician out otherwise).
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

# The throttle is imported when a login happens, not with this module (loaded by the app's ready()): a Celery
# worker never imports the FHIR API (tests/ingest/test_worker.py).


class ThrottledModelBackend(ModelBackend):
    """Django's username and password backend, refusing (``PermissionDenied`` stops ``authenticate``) a login
    from an address that failed too often before the password is hashed."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if login_blocked(request):
            raise PermissionDenied
        return super().authenticate(request, username=username, password=password, **kwargs)


def login_blocked(request) -> bool:
    """Is this request's address refused logins for now (the form then says so)?"""
    from healthplatform.fhirapi.throttle import auth_blocked_for

    return request is not None and auth_blocked_for(request) is not None


@receiver(user_login_failed, dispatch_uid="healthplatform.login_throttle")
def login_failure_record(sender, credentials, request=None, **kwargs) -> None:
    from healthplatform.fhirapi.throttle import auth_failure_record

    if request is not None:
        auth_failure_record(request)
