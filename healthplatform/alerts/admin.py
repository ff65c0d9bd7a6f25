"""The alert rules in the admin (an administrator edits windows, recognition, cross-reactivities and the policy),
and the alerts raised and overrides recorded (read only)."""

from django.contrib import admin

from healthplatform.alerts.models import Alert, AlertPolicy, CrossReactivity, Override, Recognition, RetestWindow


@admin.register(RetestWindow)
class RetestWindowAdmin(admin.ModelAdmin):
    list_display = ("code", "display", "category", "modality", "body_part", "window_days", "severity", "active")
    list_filter = ("category", "modality", "severity", "active")
    list_editable = ("window_days", "severity", "active")
    search_fields = ("code", "display", "display_en")


@admin.register(Recognition)
class RecognitionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "institution", "level", "test", "recognised")
    list_filter = ("level", "recognised")
    autocomplete_fields = ("institution", "test")


@admin.register(CrossReactivity)
class CrossReactivityAdmin(admin.ModelAdmin):
    list_display = ("allergen_group", "drug_group", "severity", "note", "active")
    list_filter = ("severity", "active")
    list_editable = ("severity", "active")


@admin.register(AlertPolicy)
class AlertPolicyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "medication_lookback_days", "allergy_severity", "updated_at")

    def has_add_permission(self, request):
        return not AlertPolicy.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(ReadOnly):
    list_display = ("raised_at", "kind", "severity", "summary", "institution", "status")
    list_filter = ("kind", "severity", "status")
    date_hierarchy = "raised_at"
    list_select_related = ("institution",)
    # An alert names a resident's facts: its pages are reads of the record (healthplatform.audit).
    record_kind = "Alert"


@admin.register(Override)
class OverrideAdmin(ReadOnly):
    list_display = ("at", "alert_key", "outcome", "reason_code", "actor", "institution")
    list_filter = ("outcome",)
    date_hierarchy = "at"
    search_fields = ("alert_key", "actor")
