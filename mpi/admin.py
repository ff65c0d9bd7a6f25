"""Admin pages of the MPI: the review queue of possible matches, persons with their identities, history.

Nothing here writes a model directly: every decision (accept, reject, merge,
unlink, unmerge) goes through ``mpi.services`` with the administrator as the
actor and the reason they typed, so it lands in the history like any other.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from mpi.models import DoNotLink, Identifier, Identity, LinkEvent, Person, ReviewItem
from mpi.services import (
    MPIError,
    identity_unlink,
    person_merge,
    person_unmerge,
    review_accept,
    review_merge,
    review_reject,
)

# The rows of the side-by-side comparison: (label, key in Identity.received / person golden fields).
COMPARED_FIELDS = [
    (pgettext_lazy("person", "name"), "name"),
    (_("sex"), "sex"),
    (_("birth date"), "birth_date"),
    (_("resident identity number"), "resident_id"),
    (_("health card number"), "health_card"),
    (_("phone"), "phone"),
    (_("address"), "address"),
]
FIELD_OF_EVIDENCE = {
    "name": "name",
    "sex": "sex",
    "birth_date": "birth_date",
    "resident_id": "resident_id",
    "health_card": "health_card",
    "phone": "phone",
    "address": "address",
}


# How the review page names each agreement level (mpi.matching levels).
LEVEL_LABELS = {
    "exact": _("exact"),
    "same_unverified": _("same, unverified"),
    "one_edit": _("one keystroke apart"),
    "unverified_disagree": _("differs (one unverified)"),
    "sound": _("sounds the same"),
    "typo": _("typing error"),
    "similar": _("similar"),
    "slips": _("two typing errors"),
    "slip": _("one number mistyped"),
    "family_only": _("family name only"),
    "given_only": _("given name only"),
    "swap": _("day and month swapped"),
    "partial": _("partly"),
    "agree": _("agrees"),
    "disagree": _("differs"),
}


# What each flag on received demographics means (mpi.demographics.Flag codes).
FLAG_LABELS = {
    "name_missing": _("no name was sent"),
    "birth_date_invalid": _("birth date is not a valid date"),
    "birth_date_future": _("birth date is in the future"),
    "resident_id_format": _("resident identity number has the wrong form"),
    "resident_id_check": _("resident identity number fails its check character"),
    "resident_id_division": _("resident identity number has no valid address code"),
    "resident_id_birth_date": _("resident identity number holds an impossible birth date"),
    "resident_id_birth_date_conflict": _("resident identity number contradicts the birth date"),
    "resident_id_sex_conflict": _("resident identity number contradicts the sex"),
    "resident_id_converted": _("15-digit number converted to 18 digits"),
    "health_card_invalid": _("health card number has the wrong form"),
    "document_invalid": _("document number has an unexpected form"),
    "document_type_unknown": _("unknown identity document type"),
}


def _actor(request) -> str:
    return f"admin:{request.user.get_username()}"


def _reason_action(model_admin, request, queryset, action, title, service, done_message):
    """An admin action that asks for a reason first, then calls ``service(obj, actor, reason)`` per object."""
    form = ReasonForm(request.POST if "apply" in request.POST else None)
    if not form.is_valid():
        return TemplateResponse(
            request,
            "admin/mpi/reason_action.html",
            {**model_admin.admin_site.each_context(request), "opts": model_admin.model._meta, "objects": queryset,
             "form": form, "action": action, "title": title},
        )  # fmt: skip
    for obj in queryset:
        try:
            service(obj, _actor(request), form.cleaned_data["reason"])
        except MPIError as exc:
            model_admin.message_user(request, f"{obj}: {exc}", messages.ERROR)
        else:
            model_admin.message_user(request, f"{obj}: {done_message}", messages.SUCCESS)
    return None


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("reason"), widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), required=True, max_length=2000
    )


class ScoreBandFilter(admin.SimpleListFilter):
    title = _("score")
    parameter_name = "score"
    BANDS = {"high": (20, None), "mid": (12, 20), "low": (None, 12)}

    def lookups(self, request, model_admin):
        return [("high", _("20 and above")), ("mid", _("12 to under 20")), ("low", _("below 12"))]

    def queryset(self, request, queryset):
        low, high = self.BANDS.get(self.value(), (None, None))
        if low is not None:
            queryset = queryset.filter(score__gte=low)
        if high is not None:
            queryset = queryset.filter(score__lt=high)
        return queryset


class OpenFirstStatusFilter(admin.SimpleListFilter):
    """The queue opens on what still needs a decision."""

    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [*ReviewItem.Status.choices, ("all", _("all"))]

    def choices(self, changelist):
        value = self.value() or ReviewItem.Status.OPEN
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or ReviewItem.Status.OPEN
        return queryset if value == "all" else queryset.filter(status=value)


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    # Resident records, their reads logged by the audit (healthplatform.audit.admin): the list and the review page.
    record_kind = "possible-match"
    read_views = ("changelist_view", "review_view")
    list_display = ["identity_name", "candidate_name", "score_display", "institution", "status", "created_at"]
    list_filter = [
        OpenFirstStatusFilter,
        ScoreBandFilter,
        ("identity__source__institution", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["identity", "identity__source__institution", "candidate"]
    search_fields = ["identity__name", "identity__local_id", "candidate__name", "candidate__resident_id"]
    ordering = ["-score", "pk"]
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # decisions are made on the review page, through the services

    @admin.display(description=_("identity"), ordering="identity__name")
    def identity_name(self, obj):
        return f"{obj.identity.name or '—'} ({obj.identity.assigning_authority}|{obj.identity.local_id})"

    @admin.display(description=_("candidate person"), ordering="candidate__name")
    def candidate_name(self, obj):
        return str(obj.candidate)

    @admin.display(description=_("score"), ordering="score")
    def score_display(self, obj):
        url = reverse("admin:mpi_reviewitem_review", args=[obj.pk])
        return format_html('<a href="{}" class="review-link">{}</a>', url, f"{obj.score:.1f}")

    @admin.display(description=_("institution"))
    def institution(self, obj):
        source = obj.identity.source
        return source.institution.name if source else obj.identity.assigning_authority

    def get_urls(self):
        urls = [
            path("<int:pk>/review/", self.admin_site.admin_view(self.review_view), name="mpi_reviewitem_review"),
        ]
        return urls + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:mpi_reviewitem_review", args=[object_id]))

    def review_view(self, request, pk):
        """Side by side: the identity as received, the candidate's golden record and identities, the evidence."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        item = get_object_or_404(ReviewItem.objects.select_related("identity", "candidate"), pk=pk)
        form = ReasonForm(request.POST or None)
        if request.method == "POST":
            if not request.user.has_perm("mpi.change_reviewitem") and not request.user.is_superuser:
                raise PermissionDenied
            decision = request.POST.get("decision")
            if decision not in ("accept", "reject", "merge"):
                messages.error(request, _("Choose one: link, merge, or never link."))
            elif form.is_valid():
                service = {"accept": review_accept, "reject": review_reject, "merge": review_merge}[decision]
                try:
                    service(item=item, actor=_actor(request), reason=form.cleaned_data["reason"])
                except MPIError as exc:
                    messages.error(request, str(exc))
                else:
                    messages.success(request, _("Decision recorded."))
                    return HttpResponseRedirect(reverse("admin:mpi_reviewitem_changelist"))
        identity = item.identity
        received = identity.received
        golden = {
            "name": item.candidate.name,
            "sex": item.candidate.sex,
            "birth_date": item.candidate.birth_date.isoformat() if item.candidate.birth_date else "",
            "resident_id": item.candidate.resident_id,
            "health_card": item.candidate.health_card,
            "phone": item.candidate.phone,
            "address": item.candidate.address,
        }
        evidence = item.evidence.get("fields", {})
        rows = []
        for label, key in COMPARED_FIELDS:
            value = received.get(key) or ""
            if key == "name" and not value:
                value = identity.name
            if key == "sex":
                value, golden[key] = (
                    identity.get_sex_display() if identity.sex else value,
                    item.candidate.get_sex_display(),
                )
            ev = evidence.get(key, {})
            rows.append(
                {
                    "label": label,
                    "key": key,
                    "identity": value,
                    "candidate": golden.get(key) or "",
                    "level": ev.get("level", ""),
                    "level_label": LEVEL_LABELS.get(ev.get("level", ""), ev.get("level", "")),
                    "weight": ev.get("weight"),
                }
            )
        for key in ("document",):
            if key in evidence:
                rows.append(
                    {"label": _("other documents"), "key": key, "identity": "", "candidate": "", **evidence[key]}
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Possible match"),
            "item": item,
            "identity": identity,
            "rows": rows,
            "flags": [{**f, "label": FLAG_LABELS.get(f["code"], f["message"])} for f in identity.flags],
            "candidate_identities": item.candidate.identities.order_by("assigning_authority", "local_id"),
            "score": item.evidence.get("score", item.score),
            "corroborated": item.evidence.get("corroborated"),
            "form": form,
            "decided": item.status != ReviewItem.Status.OPEN,
        }
        return TemplateResponse(request, "admin/mpi/reviewitem/review.html", context)


class IdentityInline(admin.TabularInline):
    model = Identity
    fk_name = "person"
    extra = 0
    fields = ["assigning_authority", "local_id", "name", "sex", "birth_date", "link_kind", "link_score", "linked_by"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class MergeForm(forms.Form):
    survivor = forms.ModelChoiceField(queryset=Person.objects.none(), label=_("surviving person"))
    reason = forms.CharField(label=_("reason"), widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


def _reporter(held: dict) -> str:
    return held.get("institution_name") or held.get("institution") or held.get("authority") or "—"


def _reported(value: str, held: dict | None) -> str:
    """A golden contact detail with who reported it and when, and the value it replaced (survivorship:
    mpi/services/links.py): an administrator sees that one institution changed it, not only what it is."""
    if not value:
        return "—"
    if not held:
        return value
    text = _("%(value)s (reported by %(who)s on %(date)s)") % {
        "value": value,
        "who": _reporter(held),
        "date": (held.get("since") or "")[:10],
    }
    previous = held.get("previous")
    if previous and previous.get("value"):
        text += "; " + _("before: %(value)s, reported by %(who)s") % {
            "value": previous["value"],
            "who": _reporter(previous),
        }
    return text


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    record_kind = "person"
    list_display = ["name", "sex", "birth_date", "resident_id", "status", "identity_count", "updated_at"]
    list_filter = ["status", "sex"]
    search_fields = ["name", "=resident_id", "=health_card", "identities__local_id", "identities__name_latin"]
    readonly_fields = [
        "uuid", "status", "merged_into", "name", "sex", "birth_date", "resident_id", "health_card",
        "phone_reported", "address_reported", "created_at", "updated_at",
    ]  # fmt: skip
    inlines = [IdentityInline]
    actions = ["merge_selected"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(identity_total=Count("identities"))

    @admin.display(description=_("phone"))
    def phone_reported(self, obj):
        return _reported(obj.phone, (obj.provenance or {}).get("phone"))

    @admin.display(description=_("address"))
    def address_reported(self, obj):
        return _reported(obj.address, (obj.provenance or {}).get("address"))

    @admin.display(description=_("identities"), ordering="identity_total")
    def identity_count(self, obj):
        return obj.identity_total

    @admin.action(description=_("Merge the selected persons"))
    def merge_selected(self, request, queryset):
        persons = list(queryset.filter(status=Person.Status.ACTIVE))
        if len(persons) != 2:
            self.message_user(request, _("Select exactly two active persons to merge."), messages.ERROR)
            return None
        form = MergeForm(request.POST if "apply" in request.POST else None)
        form.fields["survivor"].queryset = queryset
        if form.is_valid():
            survivor = form.cleaned_data["survivor"]
            duplicate = next(p for p in persons if p.pk != survivor.pk)
            try:
                person_merge(
                    survivor=survivor, duplicate=duplicate, actor=_actor(request), reason=form.cleaned_data["reason"]
                )
            except MPIError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, _("Merged."), messages.SUCCESS)
            return None
        return TemplateResponse(
            request,
            "admin/mpi/person/merge.html",
            {**self.admin_site.each_context(request), "opts": self.model._meta, "persons": persons, "form": form,
             "title": _("Merge persons")},
        )  # fmt: skip


class IdentifierInline(admin.TabularInline):
    model = Identifier
    extra = 0
    fields = ["kind", "value", "trusted", "flag", "current", "recorded_at", "superseded_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    record_kind = "identity"
    list_display = ["__str__", "name", "sex", "birth_date", "person", "link_kind", "link_score", "flag_count"]
    list_filter = ["link_kind", ("source__institution", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=local_id", "name", "name_latin"]
    list_select_related = ["person"]
    readonly_fields = [
        "uuid", "assigning_authority", "local_id", "source", "received", "flags", "name", "name_latin", "sex",
        "birth_date", "person", "link_kind", "link_score", "link_evidence", "linked_by", "linked_at",
        "created_at", "updated_at",
    ]  # fmt: skip
    exclude = ["profile"]
    inlines = [IdentifierInline]
    actions = ["unlink_selected"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("flags"))
    def flag_count(self, obj):
        return len(obj.flags) or ""

    @admin.action(description=_("Unlink the selected identities from their persons"))
    def unlink_selected(self, request, queryset):
        return _reason_action(
            self, request, queryset, "unlink_selected", _("Unlink identities"),
            lambda identity, actor, reason: identity_unlink(identity=identity, actor=actor, reason=reason),
            _("Unlinked."),
        )  # fmt: skip


@admin.register(LinkEvent)
class LinkEventAdmin(admin.ModelAdmin):
    list_display = ["at", "kind", "identity", "person", "other_person", "actor", "reason", "undone_by"]
    list_filter = ["kind"]
    search_fields = ["actor", "reason", "identity__local_id"]
    list_select_related = ["identity", "person", "other_person", "undone_by"]
    actions = ["unmerge_selected"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Unmerge the selected merges"), permissions=["view"])
    def unmerge_selected(self, request, queryset):
        if not request.user.has_perm("mpi.change_person"):
            raise PermissionDenied
        return _reason_action(
            self, request, queryset, "unmerge_selected", _("Unmerge"),
            lambda event, actor, reason: person_unmerge(merge=event, actor=actor, reason=reason),
            _("Unmerged."),
        )  # fmt: skip


@admin.register(DoNotLink)
class DoNotLinkAdmin(admin.ModelAdmin):
    list_display = ["identity_a", "identity_b", "actor", "reason", "created_at"]
    search_fields = ["identity_a__local_id", "identity_b__local_id", "actor"]
    list_select_related = ["identity_a", "identity_b"]
    readonly_fields = ["identity_a", "identity_b", "actor", "reason", "created_at"]

    def has_add_permission(self, request):
        return False
