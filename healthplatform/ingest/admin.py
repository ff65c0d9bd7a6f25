"""The HL7 v2 error queue and feed monitor in the admin (issue 17): an operator finds a message by sender, type,
control id, status, date and patient; reads it as received beside its parsed segments and the resources it
produced; replays it through the same pipeline or skips it with a reason; and watches the feeds on the
monitor page. The rows themselves are never edited: what senders sent stays as sent, and every action goes
through ``ingest.operations`` with the operator as the actor.

Who may do what: the view permission reads the queue and the monitor; replaying needs
``ingest.replay_inboxmessage``, skipping ``ingest.skip_inboxmessage`` (superusers have both). A message holds
a patient's data: its list and detail pages are reads of resident records, recorded by the audit
(``record_kind``; ``record_persons`` finds whose through the patient key).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from healthplatform.ingest.intake import SUPPORTED_EVENTS
from healthplatform.ingest.models import InboxAction, InboxMessage
from healthplatform.ingest.operations import (
    InboxOperationRefused,
    inbox_monitor,
    inbox_replay,
    inbox_skip,
    message_actions,
    message_resources,
    message_segments,
)
from mpi.models import Identity
from registry.models import SourceSystem

# The monitor's windows: (query value, label, length; None: everything the inbox retains).
MONITOR_WINDOWS = [
    ("1h", _("last hour"), dt.timedelta(hours=1)),
    ("24h", _("last 24 hours"), dt.timedelta(hours=24)),
    ("7d", _("last 7 days"), dt.timedelta(days=7)),
    ("all", _("everything retained"), None),
]


def _actor(request) -> str:
    return f"admin:{request.user.get_username()}"


class MessageTypeFilter(admin.SimpleListFilter):
    """MSH-9 by message code and trigger event, from the types the intake takes: a fixed list, where the
    field's own filter would read every distinct value of the inbox on each page."""

    title = _("MSH-9 message type")
    parameter_name = "type"

    def lookups(self, request, model_admin):
        types = [f"{code}^{event}" for code, events in SUPPORTED_EVENTS.items() for event in sorted(events)]
        return [(t, t) for t in types]

    def queryset(self, request, queryset):
        if self.value():
            # "ADT^A01" and "ADT^A01^ADT_A01" alike (MSH-9.3 is often empty before 2.3.1).
            return queryset.filter(Q(message_type=self.value()) | Q(message_type__startswith=f"{self.value()}^"))
        return queryset


class SourceFilter(admin.SimpleListFilter):
    """The sender, named with its institution in one query (the field's own filter reads each source's
    institution on its own: a query per feed of the region on every page)."""

    title = _("source system")
    parameter_name = "source__id__exact"  # the field filter's own parameter: the monitor's links use it

    def lookups(self, request, model_admin):
        return [(str(s.pk), str(s)) for s in SourceSystem.objects.select_related("institution").order_by("name")]

    def queryset(self, request, queryset):
        return queryset.filter(source_id=self.value()) if self.value() else queryset


class SkipForm(forms.Form):
    reason = forms.CharField(
        label=_("reason"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text=_("Why this message is never to be processed. Do not write patient data here."),
    )


@admin.register(InboxMessage)
class InboxMessageAdmin(admin.ModelAdmin):
    record_kind = "inbox-message"
    list_display = (
        "received_at",
        "source",
        "message_type",
        "control_id",
        "status",
        "attempts",
        "ack_code",
        "resends",
        "door",
    )
    list_filter = ("status", SourceFilter, MessageTypeFilter, "door", "received_at", "control_id_reused")
    search_fields = ("=control_id",)  # and the patient and the uuid: get_search_results
    search_help_text = _(
        "An MSH-10 control id, a patient's MRN (as “MRN” or “MRN^authority”) or an inbox message id (exact)."
    )
    date_hierarchy = "received_at"
    list_select_related = ("source__institution",)  # a source system names itself with its institution
    show_full_result_count = False  # a count of millions of rows on every page is a full scan
    actions = ("replay_selected", "skip_selected")
    fields = (
        ("uuid", "door", "peer"),
        ("source", "sending_application", "sending_facility"),
        ("message_type", "control_id", "version", "charset"),
        ("received_at", "status", "ack_code", "attempts", "processed_at"),
        ("resends", "control_id_reused", "replay_of", "patient_key"),
        "error",
        "sha256",
    )
    change_form_template = "admin/ingest/inboxmessage/change_form.html"
    change_list_template = "admin/ingest/inboxmessage/change_list.html"

    # --- permissions: nothing is added, changed or deleted here -----------------------------------------

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_replay_permission(self, request, obj=None):
        return request.user.has_perm("ingest.replay_inboxmessage")

    def has_skip_permission(self, request, obj=None):
        return request.user.has_perm("ingest.skip_inboxmessage")

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "ingest_inboxmessage_changelist":
            # A list page shows neither the bytes nor the text (a message may be megabytes: an MDM's document).
            rows = rows.defer("raw", "text")
        return rows

    # --- the audit: whose record a row shows ------------------------------------------------------------

    def record_persons(self, object_ids):
        """The persons of these rows' patients: the MPI identity their patient key names (PID-3's MRN, under
        its CX.4 authority, else the sender's MSH-4 as processing registers it). Two queries."""
        rows = InboxMessage.objects.filter(pk__in=object_ids).exclude(patient_key="")
        wanted = Q()
        for key, facility in rows.values_list("patient_key", "sending_facility"):
            mrn, _caret, authority = key.partition("|")[2].rpartition("^")
            if mrn:
                wanted |= Q(local_id=mrn, assigning_authority=authority or facility.split("^")[0])
        if not wanted:
            return []
        return Identity.objects.filter(wanted).values_list("person_id", flat=True)

    # --- search: control id, patient, uuid --------------------------------------------------------------

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        wanted = Q(control_id=term)
        with contextlib.suppress(ValueError):
            wanted |= Q(uuid=uuid.UUID(term))
        wanted |= Q(patient_key__in=self._patient_keys(term))
        return queryset.filter(wanted), False

    @staticmethod
    def _patient_keys(term: str) -> list[str]:
        """The patient keys (``<source id>|<MRN>^<authority>``) an MRN can have: each sender's, under the
        authority typed or, without one, under the sender's MSH-4 or none — an IN on the key's index, where a
        suffix match would read the whole inbox."""
        if "|" in term:
            return [term]
        mrn, caret, authority = term.partition("^")
        keys = []
        for source_id, facility in SourceSystem.objects.values_list("pk", "sending_facility"):
            if caret:
                keys.append(f"{source_id}|{mrn}^{authority}")
            else:
                keys += [f"{source_id}|{mrn}^{facility}", f"{source_id}|{mrn}^"]
        return keys

    # --- pages --------------------------------------------------------------------------------------------

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("monitor/", wrap(self.monitor_view), name=f"{prefix}_monitor"),
            path("<path:object_id>/replay/", wrap(self.replay_view), name=f"{prefix}_replay"),
            path("<path:object_id>/skip/", wrap(self.skip_view), name=f"{prefix}_skip"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        message = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if message is not None:
            text = message.text or bytes(message.raw).decode("utf-8", errors="replace")
            extra.update(
                # HL7 v2 ends segments with CR, which a browser does not break on: one segment per line.
                raw_lines=text.replace("\r\n", "\r").replace("\n", "\r").strip("\r").split("\r"),
                segments=message_segments(message),
                produced=[
                    (p, reverse("admin:ehr_resource_change", args=[p.resource_pk]) if p.resource_pk else "")
                    for p in message_resources(message)
                ],
                operator_actions=message_actions(message),
                replays=list(message.replays.order_by("pk").only("pk", "uuid", "status", "received_at")),
                may_replay=message.is_replayable() and self.has_replay_permission(request),
                may_skip=message.is_skippable() and self.has_skip_permission(request),
            )
        return super().change_view(request, object_id, form_url, extra)

    def changelist_view(self, request, extra_context=None):
        extra = {"monitor_url": reverse("admin:ingest_inboxmessage_monitor"), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def monitor_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        chosen = request.GET.get("window", "24h")
        windows = {key: length for key, _label, length in MONITOR_WINDOWS}
        if chosen not in windows:
            chosen = "24h"
        length = windows[chosen]
        monitor = inbox_monitor(since=timezone.now() - length if length else None)
        changelist = reverse("admin:ingest_inboxmessage_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Feed monitor"),
            "monitor": monitor,
            "windows": [(key, label) for key, label, _length in MONITOR_WINDOWS],
            "window": chosen,
            "changelist_url": changelist,
            "status_labels": dict(InboxMessage.Status.choices),
        }
        return TemplateResponse(request, "admin/ingest/inboxmessage/monitor.html", context)

    def replay_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_replay_permission(request):
            raise PermissionDenied
        message = get_object_or_404(InboxMessage, pk=object_id)
        try:
            replay = inbox_replay(message=message, actor=_actor(request))
        except InboxOperationRefused as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:ingest_inboxmessage_change", args=[message.pk]))
        self.message_user(request, _("Replayed as a new inbox message."), messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:ingest_inboxmessage_change", args=[replay.pk]))

    def skip_view(self, request, object_id):
        if not self.has_skip_permission(request):
            raise PermissionDenied
        message = get_object_or_404(InboxMessage, pk=object_id)
        return self._skip(request, InboxMessage.objects.filter(pk=message.pk), single=True)

    # --- actions ------------------------------------------------------------------------------------------

    @admin.action(description=_("Replay the selected messages"), permissions=["replay"])
    def replay_selected(self, request, queryset):
        done = 0
        for message in queryset.select_related(None).order_by("pk").only("pk"):
            try:
                inbox_replay(message=message, actor=_actor(request))
            except InboxOperationRefused as refusal:
                self.message_user(request, str(refusal), messages.WARNING)
            else:
                done += 1
        if done:
            self.message_user(request, _("%(count)d messages replayed.") % {"count": done}, messages.SUCCESS)

    @admin.action(description=_("Skip the selected messages (asks for a reason)"), permissions=["skip"])
    def skip_selected(self, request, queryset):
        return self._skip(request, queryset, single=False)

    def _skip(self, request, queryset, *, single: bool):
        """The skip's confirmation page (the reason asked for), then the skip of each row."""
        form = SkipForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": _("Skip inbox messages"),
                "objects": queryset.select_related("source").defer("raw", "text"),
                "form": form,
                "single": single,
            }
            return TemplateResponse(request, "admin/ingest/inboxmessage/skip.html", context)
        done = 0
        for message in queryset.select_related(None).order_by("pk").only("pk"):
            try:
                inbox_skip(message=message, actor=_actor(request), reason=form.cleaned_data["reason"])
            except InboxOperationRefused as refusal:
                self.message_user(request, str(refusal), messages.WARNING)
            else:
                done += 1
        if done:
            self.message_user(request, _("%(count)d messages skipped.") % {"count": done}, messages.SUCCESS)
        if single:
            return HttpResponseRedirect(reverse("admin:ingest_inboxmessage_change", args=[queryset.get().pk]))
        return None


@admin.register(InboxAction)
class InboxActionAdmin(admin.ModelAdmin):
    """The operators' replays and skips, read only (an action log its readers can edit proves nothing)."""

    list_display = ("at", "actor", "action", "message_uuid", "replay_uuid", "reason")
    list_filter = ("action",)
    search_fields = ("=message_uuid", "=replay_uuid", "=actor")
    date_hierarchy = "at"
    show_full_result_count = False
    readonly_fields = list_display

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
