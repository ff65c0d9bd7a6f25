"""Read-only admin pages of the document store: what is stored, by whom, and every version of its metadata.

Documents change only through the services (a feed's update, a replacement, a retirement), so these
pages offer no add, change or delete; the content itself is never shown here, only its size and hashes.
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from emr.models import DocumentEntry, DocumentVersion


def _pretty(resource: dict) -> str:
    return format_html("<pre>{}</pre>", json.dumps(resource, ensure_ascii=False, indent=2))


class DocumentVersionInline(admin.TabularInline):
    model = DocumentVersion
    extra = 0
    can_delete = False
    fields = ["version_id", "method", "recorded_at", "actor", "reason", "resource_json"]
    readonly_fields = fields
    ordering = ["-version_id"]

    @admin.display(description=_("DocumentReference"))
    def resource_json(self, obj: DocumentVersion) -> str:
        return _pretty(obj.resource)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DocumentEntry)
class DocumentEntryAdmin(admin.ModelAdmin):
    record_kind = "document"
    list_display = ["title", "type_display", "class_code", "status", "author_institution", "date"]
    list_filter = ["status", "class_code", "author_institution"]
    list_select_related = ["author_institution"]
    # Business ids and document ids only: a search by patient belongs to the MPI pages.
    search_fields = ["=master_identifier_value", "=uuid"]
    date_hierarchy = "date"
    ordering = ["-date", "-id"]
    inlines = [DocumentVersionInline]
    fieldsets = [
        (None, {"fields": ["uuid", "title", "status", "class_code", "type_display", "type_code", "type_system"]}),
        (
            _("Origin"),
            {
                "fields": [
                    "identity",
                    "source",
                    "author_institution",
                    "master_identifier_system",
                    "master_identifier_value",
                ]
            },
        ),
        (_("Content"), {"fields": ["content_type", "size", "sha256", "sha1", "date"]}),
        (_("Replacement"), {"fields": ["replaced_by", "replaces_list"]}),
        (_("Record"), {"fields": ["version_id", "created_at", "updated_at", "resource_json"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [f for fieldset in self.fieldsets for f in fieldset[1]["fields"]]

    @admin.display(description=_("replaces"))
    def replaces_list(self, obj: DocumentEntry) -> str:
        return ", ".join(str(e.uuid) for e in obj.replaces.all()) or "—"

    @admin.display(description=_("DocumentReference"))
    def resource_json(self, obj: DocumentEntry) -> str:
        return _pretty(obj.resource)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
