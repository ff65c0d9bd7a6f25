"""Admin pages of the registry, for platform administrators.

Format checks live in the models (validators and ``clean``), so the admin's
forms reject a wrong institution code or licence number with the same
message the services give. Source systems are created through the service so
the client secret is generated, hashed, and shown once.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from registry.models import (
    CodeSystem,
    Concept,
    ConceptMapEntry,
    Department,
    DrugClassMember,
    DrugIngredient,
    Institution,
    Practitioner,
    SourceSystem,
    UnmappedCode,
)
from registry.services import source_system_register, source_system_rotate_secret


class DepartmentInline(admin.TabularInline):
    model = Department
    extra = 0
    fields = ["code", "name", "active"]


class SourceSystemInline(admin.TabularInline):
    model = SourceSystem
    extra = 0
    fields = ["kind", "name", "sending_application", "sending_facility", "client_id", "active"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # added on the source system page, where the secret is issued


@admin.register(Institution)
class InstitutionAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "level", "kind", "district", "licence_valid_until", "active"]
    list_filter = ["kind", "level", "district", "active"]
    search_fields = ["name", "code", "licence_number", "address"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [DepartmentInline, SourceSystemInline]
    fieldsets = [
        (None, {"fields": ["name", "code", "kind", "level", "active"]}),
        (_("Location"), {"fields": ["division_code", "district", "address", "phone"]}),
        (_("Licence"), {"fields": ["licence_number", "licence_valid_from", "licence_valid_until"]}),
        (_("Record"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # The code and kind are the institution's identity; feeds and practitioners hang on them.
        return [*self.readonly_fields, "code", "kind"] if obj else self.readonly_fields


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "institution", "active"]
    list_filter = ["active", "institution__kind", "institution__level"]
    search_fields = ["name", "code", "institution__name"]
    autocomplete_fields = ["institution"]
    list_select_related = ["institution"]


@admin.register(Practitioner)
class PractitionerAdmin(admin.ModelAdmin):
    list_display = ["name", "role", "licence_number", "institution", "department", "valid_until", "active"]
    list_filter = ["role", "active", "institution__level", "institution__kind"]
    search_fields = ["name", "name_pinyin", "licence_number", "institution__name"]
    autocomplete_fields = ["institution", "department"]
    list_select_related = ["institution", "department"]


@admin.register(SourceSystem)
class SourceSystemAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "institution",
        "sending_application",
        "sending_facility",
        "client_id",
        "active",
    ]
    list_filter = ["kind", "active", "institution__level"]
    search_fields = ["name", "client_id", "sending_application", "sending_facility", "institution__name"]
    autocomplete_fields = ["institution"]
    list_select_related = ["institution"]
    readonly_fields = ["client_id", "secret_rotated_at", "created_at", "updated_at"]
    actions = ["rotate_secret"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        source, secret = source_system_register(
            institution=obj.institution,
            kind=obj.kind,
            name=obj.name,
            sending_application=obj.sending_application,
            sending_facility=obj.sending_facility,
            active=obj.active,
            fhir_scopes=obj.fhir_scopes,
            hl7_charset=obj.hl7_charset,
        )
        obj.pk = source.pk
        obj.__dict__.update({f.attname: getattr(source, f.attname) for f in source._meta.concrete_fields})
        obj._state.adding = False
        self.message_user(
            request,
            _("Client id %(client)s, secret %(secret)s — copy the secret now: it is stored only as a hash.")
            % {"client": source.client_id, "secret": secret},
            messages.WARNING,
        )

    @admin.action(description=_("Rotate the client secret of the selected source systems"))
    def rotate_secret(self, request, queryset):
        for source in queryset:
            secret = source_system_rotate_secret(source_system=source)
            self.message_user(
                request,
                _("%(name)s: new secret %(secret)s (shown once)") % {"name": source.name, "secret": secret},
                messages.WARNING,
            )


@admin.register(CodeSystem)
class CodeSystemAdmin(admin.ModelAdmin):
    list_display = ["name", "url", "version", "hl7_v2_name", "oid", "source_system"]
    list_filter = [("source_system", admin.EmptyFieldListFilter)]
    search_fields = ["name", "url", "oid", "hl7_v2_name"]
    autocomplete_fields = ["source_system"]
    list_select_related = ["source_system__institution"]


class DrugIngredientInline(admin.TabularInline):
    model = DrugIngredient
    fk_name = "drug"
    extra = 0
    autocomplete_fields = ["ingredient"]
    verbose_name_plural = _("ingredients (when this concept is a drug of the dictionary)")


class DrugClassMemberInline(admin.TabularInline):
    model = DrugClassMember
    extra = 0
    verbose_name_plural = _("ATC groups (when this concept is an allergen or drug class)")


@admin.register(Concept)
class ConceptAdmin(admin.ModelAdmin):
    list_display = ["code", "display", "display_en", "code_system", "active"]
    list_filter = ["code_system", "active"]
    search_fields = ["code", "display", "display_en"]
    list_select_related = ["code_system"]
    inlines = [DrugIngredientInline, DrugClassMemberInline]


@admin.register(DrugIngredient)
class DrugIngredientAdmin(admin.ModelAdmin):
    list_display = ["drug", "ingredient"]
    list_filter = ["drug__code_system"]
    search_fields = ["drug__code", "drug__display", "ingredient__code", "ingredient__display"]
    autocomplete_fields = ["drug", "ingredient"]
    list_select_related = ["drug", "ingredient"]


@admin.register(DrugClassMember)
class DrugClassMemberAdmin(admin.ModelAdmin):
    list_display = ["drug_class", "atc_prefix"]
    search_fields = ["drug_class__code", "drug_class__display", "atc_prefix"]
    autocomplete_fields = ["drug_class"]
    list_select_related = ["drug_class"]


@admin.register(ConceptMapEntry)
class ConceptMapEntryAdmin(admin.ModelAdmin):
    list_display = ["local_code", "local_display", "local_system", "concept", "equivalence", "source_system"]
    list_filter = ["equivalence", "concept__code_system", "source_system__kind", "source_system__institution"]
    search_fields = ["local_code", "local_display", "concept__code", "concept__display"]
    autocomplete_fields = ["source_system", "concept"]
    list_select_related = ["concept__code_system", "source_system__institution"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # New writes translate at once; what is stored already needs the re-translation.
        self.message_user(
            request,
            _(
                "Facts written from now on are translated. For those already stored, run "
                "“manage.py codes_retranslate --source %(client)s”."
            )
            % {"client": obj.source_system.client_id},
            messages.INFO,
        )


@admin.register(UnmappedCode)
class UnmappedCodeAdmin(admin.ModelAdmin):
    """The terminology team's work list: the local codes feeds send that no map translates, most frequent first.
    The counts are the write corridor's; nothing here edits them."""

    list_display = ["code", "display", "system", "source_system", "count", "last_seen", "first_seen", "mapped", "map"]
    list_filter = [("source_system", admin.RelatedOnlyFieldListFilter), "source_system__kind"]
    search_fields = ["code", "display", "system"]
    ordering = ["-count", "code"]
    list_select_related = ["source_system__institution"]
    readonly_fields = ["source_system", "system", "code", "display", "count", "first_seen", "last_seen"]

    def has_add_permission(self, request):
        return False  # rows come from what feeds send

    def get_queryset(self, request):
        entries = ConceptMapEntry.objects.filter(
            Q(local_system=OuterRef("system")) | Q(local_system=""),
            source_system=OuterRef("source_system"),
            local_code=OuterRef("code"),
        )
        return super().get_queryset(request).annotate(is_mapped=Exists(entries))

    @admin.display(boolean=True, description=_("mapped (awaiting re-translation)"), ordering="is_mapped")
    def mapped(self, obj):
        return obj.is_mapped

    @admin.display(description=_("concept map"))
    def map(self, obj):
        query = urlencode(
            {
                "source_system": obj.source_system_id,
                "local_system": obj.system,
                "local_code": obj.code,
                "local_display": obj.display,
            }
        )
        url = f"{reverse('admin:registry_conceptmapentry_add')}?{query}"
        return format_html('<a href="{}">{}</a>', url, _("map this code…"))
