"""The HL7 v2 inbox in the admin: an operator finds a message by sender, type, control id, status, date and
patient key, and reads it (bytes as received and the decoded text). Read only: the inbox is what senders sent.
Replay, skip and the feed monitor come with the processing (issue 17)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from healthplatform.ingest.models import InboxMessage


@admin.register(InboxMessage)
class InboxMessageAdmin(admin.ModelAdmin):
    list_display = ("received_at", "source", "message_type", "control_id", "status", "ack_code", "resends", "door")
    list_filter = ("status", "door", "message_type", "control_id_reused", "received_at", "source")
    search_fields = ("=control_id", "=patient_key", "sending_application", "sending_facility")
    date_hierarchy = "received_at"
    list_select_related = ("source",)
    show_full_result_count = False  # a count of millions of rows on every page is a full scan
    fields = (
        ("uuid", "door", "peer"),
        ("source", "sending_application", "sending_facility"),
        ("message_type", "control_id", "version", "charset"),
        ("received_at", "status", "ack_code", "attempts", "processed_at"),
        ("resends", "control_id_reused", "replay_of", "patient_key"),
        "error",
        "text_shown",
        "sha256",
    )
    readonly_fields = ("text_shown",)  # the rest is read only: nothing here may be changed

    @admin.display(description=_("decoded text"))
    def text_shown(self, obj):
        from django.utils.html import format_html

        # Segments one per line (HL7 v2 ends them with CR, which a browser does not break on).
        return format_html('<pre class="hl7v2">{}</pre>', (obj.text or "").replace("\r", "\n"))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
