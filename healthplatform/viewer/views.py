"""The viewer's pages: they translate HTTP to the record read, the alerts, the audit and back.

Every page that shows a resident's data records the read in the audit (``reads_record``, door "viewer"),
with the stated reason when the clinician's institution does not know the resident. What a clinician types
(numbers, names) arrives by POST and is marked sensitive, so it is in no URL, no request log and no error
report.
"""

from __future__ import annotations

import json

from django.contrib.auth import logout
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ehr import selectors as archive
from emr import selectors as documents_store
from healthplatform.audit.selectors import person_accesses
from healthplatform.audit.services import reads_record
from healthplatform.client_address import client_address
from healthplatform.content_security import document_response
from healthplatform.record import person_record
from healthplatform.viewer import alerts_panel
from healthplatform.viewer.clinicians import clinician_required, today
from healthplatform.viewer.documents import INLINE_MAX_BYTES, cda_read, content_kind, text_read
from healthplatform.viewer.facts import fact_of, reading_now
from healthplatform.viewer.forms import ClinicianLoginForm, OverrideForm, ReasonForm, ResidentSearchForm
from healthplatform.viewer.page import filters_read, mask_number, patient_page
from healthplatform.viewer.provenance import submission_of
from healthplatform.viewer.reasons import access_decide, reason_state
from healthplatform.viewer.residents import MAX_RESULTS, resident_get, residents_find
from registry.selectors import source_institutions

# The most facts one patient page reads: far above a resident's record (the bar's resident has 2,000);
# beyond it the page says the record was cut.
MAX_FACTS = 10_000
WHO_HAS_VIEWED = 20


class ClinicianLoginView(LoginView):
    """Django's login page, for clinicians only (``ClinicianLoginForm``)."""

    template_name = "viewer/login.html"
    authentication_form = ClinicianLoginForm

    def get_default_redirect_url(self):
        return reverse("viewer:search")


@require_POST
def logout_view(request):
    logout(request)
    return redirect("viewer:login")


def _read(request, resident, access, what: str) -> None:
    reads_record(
        caller=request.caller,
        person_ids=[resident.person.pk],
        door="viewer",
        what=what,
        reason=access.reason,
        reason_text=access.reason_text,
        break_glass=access.break_glass,
        client_address=client_address(request),
    )


def _resident_or_404(request, person_uuid: str):
    resident = resident_get(person_uuid)
    if resident is None:
        raise Http404(_("No resident has this id."))
    return resident


def _reason_redirect(request, resident):
    target = reverse("viewer:reason", args=[resident.uuid])
    return redirect(f"{target}?{urlencode({'next': request.path})}")


@require_http_methods(["GET", "POST"])
@sensitive_post_parameters("number", "name", "birth_date")
@sensitive_variables("data")
@clinician_required
def search(request):
    """Find a resident: the form, and the residents found (listed, never guessed: the clinician picks)."""
    form = ResidentSearchForm(request.POST if request.method == "POST" else None)
    results, too_many = None, False
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        persons = residents_find(
            by=data["by"], number=data["number"], name=data["name"], birth_date=data.get("birth_date")
        )
        too_many = len(persons) > MAX_RESULTS
        persons = persons[:MAX_RESULTS]
        institutions = source_institutions()
        results = []
        for person in persons:
            identities = list(person.identities.all())
            known_at = sorted(
                {institutions[i.source_id].name for i in identities if i.source_id in institutions}
                | {i.assigning_authority for i in identities if i.source_id not in institutions}
            )
            results.append(
                {
                    "person": person,
                    "resident_id": mask_number(person.resident_id),
                    "health_card": mask_number(person.health_card),
                    "known_at": known_at,
                    "known": request.caller.knows(identities),
                }
            )
        if persons:
            # A result list shows names and birth dates: each listed resident's audit says they were found.
            reads_record(
                caller=request.caller,
                person_ids=[p.pk for p in persons],
                door="viewer",
                action="search-type",
                what="viewer search result",
                client_address=client_address(request),
            )
    return render(request, "viewer/search.html", {"form": form, "results": results, "too_many": too_many})


def _override_fields():
    """The reason fields of an alert's override form, rendered once for every alert of the page (a form's
    widgets go through the form renderer's templates: ten alerts rendered them ten times, a sixth of the page)."""
    form = OverrideForm()
    return format_html(
        "{} {}\n{} {}", form["reason_code"].label_tag(), form["reason_code"], form["reason"].label_tag(), form["reason"]
    )


@require_GET
@clinician_required
def patient(request, person_uuid):
    """The patient page: banner, alerts, every section of the cross-institution record, who has viewed it."""
    resident = _resident_or_404(request, person_uuid)
    if resident.moved:
        query = request.GET.urlencode()
        return redirect(reverse("viewer:patient", args=[resident.uuid]) + (f"?{query}" if query else ""))
    access = access_decide(request, person_uuid=resident.uuid, identities=resident.identities)
    if not access.allowed:
        return _reason_redirect(request, resident)
    record = person_record(caller=request.caller, person=resident.person, count=MAX_FACTS)
    if record is None:
        raise Http404(_("No resident has this id."))
    filters = filters_read(request.GET)
    content = patient_page(record, institutions=source_institutions(), filters=filters, today=today())
    alerts = alerts_panel.panel(caller=request.caller, person=resident.person, record=record)
    _read(request, resident, access, "viewer patient page")
    context = {
        "resident": resident,
        "page": content,
        "filters": filters,
        "access": access,
        "alerts": alerts,
        "override_fields": _override_fields(),
        "accesses": person_accesses(resident.person.pk, limit=WHO_HAS_VIEWED),
    }
    return render(request, "viewer/patient.html", context)


def _safe_next(request, resident) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    prefix = reverse("viewer:patient", args=[resident.uuid])
    if wanted.startswith(prefix) and url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}):
        return wanted
    return prefix


@require_http_methods(["GET", "POST"])
@clinician_required
def reason(request, person_uuid):
    """A resident the clinician's institution does not know: state why before opening the record."""
    resident = _resident_or_404(request, person_uuid)
    target = _safe_next(request, resident)
    if access_decide(request, person_uuid=resident.uuid, identities=resident.identities).known:
        return redirect(target)
    form = ReasonForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        reason_state(
            request, person_uuid=resident.uuid, reason=form.cleaned_data["reason"], text=form.cleaned_data["text"]
        )
        return redirect(target)
    # The form names the resident (so the clinician knows whose record they are about to open): like a search
    # result, a read of who they are, for a resident this institution does not know.
    reads_record(
        caller=request.caller,
        person_ids=[resident.person.pk],
        door="viewer",
        action="search-type",
        what="viewer reason page",
        client_address=client_address(request),
    )
    return render(request, "viewer/reason.html", {"resident": resident, "form": form, "next": target})


def _resident_opened(request, person_uuid):
    """(resident, access) for a page under a resident's URL, or a response sending the clinician elsewhere."""
    resident = _resident_or_404(request, person_uuid)
    if resident.moved:
        return None, None, redirect(request.path.replace(str(person_uuid), resident.uuid, 1))
    access = access_decide(request, person_uuid=resident.uuid, identities=resident.identities)
    if not access.allowed:
        return resident, access, _reason_redirect(request, resident)
    return resident, access, None


@require_GET
@clinician_required
def fact(request, person_uuid, resource_type, fhir_id):
    """One fact as archived, with where it came from (institution, source system, the submission that
    carried it: kind, when, request line — never the body)."""
    resident, access, elsewhere = _resident_opened(request, person_uuid)
    if elsewhere is not None:
        return elsewhere
    resource = archive.resource_get(resource_type, fhir_id)
    identities = {i.pk for i in resident.identities}
    if resource is None or resource.deleted or resource.identity_id not in identities:
        raise Http404(_("This resident's record has no such fact."))
    institutions = source_institutions()
    shown = fact_of(resource, institutions, reading_now())
    _read(request, resident, access, f"viewer fact page {resource_type}/{fhir_id}")
    context = {
        "resident": resident,
        "fact": shown,
        "resource": resource,
        "source_system": institutions.get(resource.source_id),
        "submission": submission_of(resource.submission_id),
        "body": json.dumps(resource.body, ensure_ascii=False, indent=2),
        "access": access,
    }
    return render(request, "viewer/fact.html", context)


def _document_of(resident, document_id):
    entry = documents_store.document_get(document_id)
    if entry is None or entry.identity_id not in {i.pk for i in resident.identities}:
        raise Http404(_("This resident's record has no such document."))
    return entry


@require_GET
@clinician_required
def document(request, person_uuid, document_id):
    """A shared document opened in the page: a PDF inline, CDA and text rendered readably."""
    resident, access, elsewhere = _resident_opened(request, person_uuid)
    if elsewhere is not None:
        return elsewhere
    entry = _document_of(resident, document_id)
    kind = content_kind(entry.content_type)
    cda = text = None
    if kind in ("cda", "text") and entry.size <= INLINE_MAX_BYTES:
        handle, _type, _size = documents_store.document_content(entry)
        with handle:
            data = handle.read(INLINE_MAX_BYTES + 1)
        cda = cda_read(data) if kind == "cda" else None
        if cda is None:
            text = text_read(data)
    _read(request, resident, access, f"viewer document DocumentReference/{entry.uuid}")
    context = {
        "resident": resident,
        "entry": entry,
        "institution": source_institutions().get(entry.source_id),
        "kind": kind,
        "cda": cda,
        "text": text,
        "access": access,
    }
    return render(request, "viewer/document.html", context)


@require_GET
@xframe_options_sameorigin
@clinician_required(refuse=True)
def document_content(request, person_uuid, document_id):
    """A document's content, streamed from the document store to an authorised clinician (the PDF frame of
    the document page, or the original file). Refused, never redirected, to anyone else."""
    resident = resident_get(person_uuid)
    if resident is None or resident.moved:
        raise Http404(_("No resident has this id."))
    access = access_decide(request, person_uuid=resident.uuid, identities=resident.identities)
    if not access.allowed:
        return HttpResponseForbidden(_("State a reason on the resident's page before opening their documents."))
    entry = _document_of(resident, document_id)
    kind = content_kind(entry.content_type)
    handle, content_type, size = documents_store.document_content(entry)
    _read(request, resident, access, f"viewer document content DocumentReference/{entry.uuid}")
    # The hospital's bytes, never a page of ours: inline only what runs nothing (healthplatform.content_security).
    response = document_response(
        handle,
        content_type,
        size,
        filename=f"{entry.uuid}{_EXTENSIONS.get(kind, '')}",
        download=request.GET.get("download") == "1",
    )
    response["Cache-Control"] = "private, no-store"
    return response


_EXTENSIONS = {"pdf": ".pdf", "cda": ".xml", "text": ".txt"}


@require_POST
@clinician_required
def alert_override(request, person_uuid):
    """A clinician overrides an alert with a reason (recorded by the alerts engine); back to the page."""
    resident, _access, elsewhere = _resident_opened(request, person_uuid)
    if elsewhere is not None:
        return elsewhere
    form = OverrideForm(request.POST)
    if form.is_valid():
        alerts_panel.override(
            caller=request.caller,
            user=request.user,
            key=form.cleaned_data["key"],
            reason=form.cleaned_data["reason"],
            reason_code=form.cleaned_data["reason_code"],
        )
    return redirect(reverse("viewer:patient", args=[resident.uuid]) + "#alerts")
