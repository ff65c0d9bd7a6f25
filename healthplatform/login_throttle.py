"""Password logins of people (the clinician viewer's and the admin's, both ``django.contrib.auth.authenticate``):
django-axes locks out a (username, client address) pair after ``LOGIN_FAILURES_MAX`` failures for
``LOGIN_LOCKOUT_SECONDS``, even for the right password, before any password is hashed.

Per pair, not per address alone: one attacker behind a hospital's NAT must not lock every clinician of that
hospital out; not per username alone: anyone could lock a clinician out by typing the name. The address is
``healthplatform.client_address`` (X-Forwarded-For only behind ``TRUSTED_PROXIES``), the attempts live in the
database (axes' database handler: shared by every process, listed in the admin, ``manage.py axes_reset``
lifts a lockout) and are logged by axes with the username and address, never the password (axes cleanses it,
and ``AXES_SENSITIVE_PARAMETERS`` the rest of the form). Source systems' client authentications are
throttled differently (``healthplatform.fhirapi.throttle``): one mechanism per kind of login.

A locked-out login is the login page again with the reason in the user's language, status 429 and
``Retry-After`` (``lockout_response``), never axes' bare page or a 403. ``PlatformModelBackend`` also refuses
the local demo's administrator in production (``healthplatform.demo_accounts``).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.backends import ModelBackend
from django.forms import ValidationError
from django.http import HttpResponse
from django.utils.translation import gettext

from healthplatform.demo_accounts import demo_account_refused


def _lockout_minutes() -> int:
    return max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))


def lockout_error() -> ValidationError:
    return ValidationError(
        gettext("Too many failed logins for this user from this address: try again in %(minutes)d minutes."),
        code="locked_out",
        params={"minutes": _lockout_minutes()},
    )


class LockoutMessageMixin:
    """For an ``AuthenticationForm``: says the login is locked out instead of "wrong password" when axes
    refused it (or this failure reached the limit)."""

    def get_invalid_login_error(self):
        if getattr(self.request, "axes_locked_out", False):
            return lockout_error()
        return super().get_invalid_login_error()


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: the login page the view rendered (its form says why), as 429 (RFC 6585 §4)
    with ``Retry-After``; a plain text line if the view rendered no page."""
    if original_response is not None and original_response.status_code == 200:
        response = original_response
    else:
        message = lockout_error()
        response = HttpResponse(message.message % message.params, content_type="text/plain; charset=utf-8")
    response.status_code = 429
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


class PlatformModelBackend(ModelBackend):
    """Django's username and password backend (after ``axes.backends.AxesStandaloneBackend``), refusing
    accounts that must not log in here (the local demo's administrator in production), at login and for an
    existing session alike."""

    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and not demo_account_refused(user)


class AdminLoginForm(LockoutMessageMixin, AdminAuthenticationForm):
    """The admin's login form (``admin.site.login_form``): Django's, saying when the login is locked out."""
