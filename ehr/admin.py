"""Read-only admin pages of the health archive: each fact as stored, its earlier versions, and the request
that carried it. Facts change only through the FHIR API and intake (services), never here; every list and
detail page is a read of resident records and goes to the access log."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ehr.models import Resource, ResourceVersion, Submission


def _pretty(body: dict) -> str:
    return format_html("<pre>{}</pre>", json.dumps(body, ensure_ascii=False, indent=2))


class _ReadOnly:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ResourceVersionInline(_ReadOnly, admin.TabularInline):
    model = ResourceVersion
    extra = 0
    fields = ["version_id", "method", "last_updated", "actor", "body_json"]
    readonly_fields = fields
    ordering = ["-version_id"]

    @admin.display(description=_("resource"))
    def body_json(self, obj: ResourceVersion) -> str:
        return _pretty(obj.body)


@admin.register(Resource)
class ResourceAdmin(_ReadOnly, admin.ModelAdmin):
    record_kind = "clinical-resource"
    list_display = ["resource_type", "fhir_id", "status", "effective_low", "source", "version_id", "deleted"]
    list_filter = ["resource_type", "deleted", "source"]
    search_fields = ["=fhir_id", "=identifier_value"]
    list_select_related = ["source"]
    show_full_result_count = False  # millions of rows: no COUNT(*) per page
    fields = ["resource_type", "fhir_id", "version_id", "identity", "source", "identifier_system",
              "identifier_value", "status", "effective_low", "effective_high", "last_updated", "actor",
              "deleted", "submission", "body_json"]  # fmt: skip
    readonly_fields = fields
    inlines = [ResourceVersionInline]

    @admin.display(description=_("resource"))
    def body_json(self, obj: Resource) -> str:
        return _pretty(obj.body)


@admin.register(Submission)
class SubmissionAdmin(_ReadOnly, admin.ModelAdmin):
    record_kind = "submission"
    list_display = ["uuid", "kind", "source", "actor", "request_line", "received_at"]
    list_filter = ["kind", "source"]
    search_fields = ["=uuid"]
    list_select_related = ["source"]
    show_full_result_count = False
    fields = ["uuid", "kind", "source", "actor", "request_line", "received_at", "body_sha256", "body"]
    readonly_fields = fields

    def record_persons(self, object_ids):
        """Whose records these requests carried (for the audit of reads): the persons of what they wrote. A
        scan of the archive's submission column, which has no index of its own (writes outnumber these pages
        by far)."""
        facts = Resource.objects.filter(submission_id__in=object_ids)
        return facts.values_list("identity__person_id", flat=True).distinct()
