"""Who may use the viewer: a clinician is a Django user tied to a registry Practitioner (``Practitioner.user``),
and so to an institution, while the registration is valid today and the institution may practise.

The rule is checked at login and again on every request, so a registration that expires or an institution
that is deactivated during a session locks the viewer at the next click, not at the next login. Staff and
superusers without a practitioner are not clinicians: they use the admin (whose reads the audit logs too).
"""

from __future__ import annotations

import datetime as dt
import functools

from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpResponseForbidden
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from healthplatform.access import Caller
from registry.models import Practitioner


def today() -> dt.date:
    """The calendar day in the platform's time zone (Asia/Shanghai), not the server's."""
    return timezone.localdate()


def clinician_refusal(user) -> str | None:
    """Why ``user`` may not use the viewer today, in the active language; None when they may."""
    if not user.is_active:
        return _("This account is disabled.")
    practitioner = practitioner_of(user)
    if practitioner is None:
        if user.is_staff or user.is_superuser:
            return _(
                "This is an administrator account, not a clinician's: administrators work in the admin "
                "(/admin/). A clinician's account is tied to a registered practitioner."
            )
        return _("This account is not tied to a registered practitioner: ask the platform administrator.")
    day = today()
    if not practitioner.valid_on(day):
        return _(
            "Your practitioner registration is not valid today (expired or inactive): the viewer is closed to "
            "this account until the registry renews it."
        )
    if not practitioner.institution.licence_valid_on(day):
        return _(
            "Your institution (%(institution)s) is inactive or its licence has expired: the viewer is closed to "
            "its clinicians."
        ) % {"institution": practitioner.institution.name}
    return None


def practitioner_of(user) -> Practitioner | None:
    """The practitioner a user logs in as, with institution and department (one query, kept on the user for
    the request)."""
    if not getattr(user, "pk", None):
        return None
    cached = getattr(user, "_viewer_practitioner", False)
    if cached is not False:
        return cached
    found = Practitioner.objects.select_related("institution", "department").filter(user_id=user.pk).first()
    user._viewer_practitioner = found
    return found


def clinician_caller(user) -> Caller:
    """The platform's Caller for a clinician: reads every type, writes nothing, speaks for its institution."""
    return Caller(source=None, actor=user.get_username(), practitioner=practitioner_of(user))


def clinician_required(view=None, *, refuse: bool = False):
    """A viewer page: an anonymous request is sent to the viewer's login (``refuse``: answered 403 instead,
    for the document content a page embeds), a user who is no longer a clinician is logged out with the
    reason, and the view gets ``request.caller``."""

    def wrap(view):
        @functools.wraps(view)
        def checked(request, *args, **kwargs):
            user = request.user
            if not user.is_authenticated:
                if refuse:
                    return HttpResponseForbidden(_("Log in to the viewer to read this document."))
                login = reverse("viewer:login")
                return redirect(f"{login}?{urlencode({'next': request.path})}")
            refusal = clinician_refusal(user)
            if refusal is not None:
                logout(request)
                if refuse:
                    return HttpResponseForbidden(refusal)
                messages.error(request, refusal)
                return redirect("viewer:login")
            request.caller = clinician_caller(user)
            return view(request, *args, **kwargs)

        return checked

    return wrap(view) if view is not None else wrap
