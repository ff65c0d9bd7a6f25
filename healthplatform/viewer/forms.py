"""The viewer's forms: the clinician login, the resident search, the stated reason, an alert override."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from healthplatform.audit.models import AccessEvent
from healthplatform.login_throttle import LockoutMessageMixin
from healthplatform.viewer.clinicians import clinician_refusal, today
from healthplatform.viewer.reasons import REASON_TEXT_MAX
from mpi.identifiers import ResidentIdError, normalize_resident_id, parse_resident_id


class ClinicianLoginForm(LockoutMessageMixin, AuthenticationForm):
    """Django's login, refused to anyone who is not a clinician today (``clinician_refusal`` says why), or
    locked out (``healthplatform.login_throttle``)."""

    def confirm_login_allowed(self, user):
        refusal = clinician_refusal(user)
        if refusal is not None:
            raise forms.ValidationError(refusal, code="not_clinician")


class ResidentSearchForm(forms.Form):
    """Find a resident by health card number, resident identity number, or name and birth date. Sent by POST:
    what a clinician types never sits in a URL, and so never in a server's request log."""

    BY_CARD, BY_ID, BY_NAME = "health_card", "resident_id", "name"
    BY_CHOICES = [
        (BY_CARD, _("health card number")),
        (BY_ID, _("resident identity number")),
        (BY_NAME, _("name and birth date")),
    ]

    by = forms.ChoiceField(label=_("Find by"), choices=BY_CHOICES, initial=BY_CARD, widget=forms.RadioSelect)
    number = forms.CharField(label=_("Number"), max_length=32, required=False)
    name = forms.CharField(label=_("Name"), max_length=60, required=False)
    birth_date = forms.DateField(
        label=_("Birth date"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )

    def clean(self):
        data = super().clean()
        by = data.get("by")
        number = (data.get("number") or "").strip().upper()
        if by in (self.BY_CARD, self.BY_ID) and not number:
            self.add_error("number", _("Type the number to search for."))
        if by == self.BY_ID and number:
            try:
                parse_resident_id(normalize_resident_id(number), today=today())
            except ResidentIdError as exc:
                self.add_error("number", _("Not a valid resident identity number: %(why)s") % {"why": exc})
        if by == self.BY_NAME:
            if not (data.get("name") or "").strip():
                self.add_error("name", _("Type the name."))
            if not data.get("birth_date"):
                self.add_error("birth_date", _("Give the birth date: a name alone finds too many residents."))
        data["number"] = number
        data["name"] = (data.get("name") or "").strip()
        return data


class ReasonForm(forms.Form):
    """Why a clinician opens a resident their institution does not know (recorded in the audit)."""

    reason = forms.ChoiceField(label=_("Reason"), choices=AccessEvent.Reason.choices, widget=forms.RadioSelect)
    text = forms.CharField(
        label=_("Explain (required)"),
        max_length=REASON_TEXT_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("e.g. the referral number, the consulting department, the emergency"),
    )


class OverrideForm(forms.Form):
    """A clinician's override of an alert, with a reason."""

    REASON_CODES = [
        ("clinically-appropriate", _("clinically appropriate despite the alert")),
        ("patient-informed", _("discussed with the patient")),
        ("result-outdated", _("the earlier result no longer answers the question")),
        ("other", _("other")),
    ]

    key = forms.CharField(max_length=200, widget=forms.HiddenInput)
    reason_code = forms.ChoiceField(label=_("Reason"), choices=REASON_CODES)
    reason = forms.CharField(label=_("Comment"), max_length=300, required=False)
