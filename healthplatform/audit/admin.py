"""The admin and the audit: the admin's reads of resident records are access events, and the access events
are read (never changed) in the admin.

The stores' admin pages only say what they show: a ``ModelAdmin`` with a ``record_kind`` shows resident records
of that kind, on the views ``read_views`` names (its list and its detail page by default). The audit, not the
store, makes those pages record their reads (``read_logging_install``, run when the platform's app is ready,
after the admin has discovered every store's pages), so a store never imports the audit.

Whose record a page shows is found from its model: a person is theirs, a row with a foreign key to a person or
to an MPI identity (an identity, an archived fact, a document, a possible match — both its identity's person and
its candidate) is that person's. A model with neither says so with a ``record_persons(object_ids)`` method on its
``ModelAdmin`` (the persons of those rows' primary keys); one with none of these is refused when the admin starts.

- a detail page records one access event per person it shows (door ``admin``, action ``read``);
- a list page records one per person on that page (action ``search``): a list shows names, birth dates and
  numbers as surely as a detail page does, and only the rows on the page were shown;
- an action's intermediate page (a merge's confirmation) records the persons of the rows it was given.

A read that cannot be recorded is not shown (the error page instead): who read a record is part of it.
Every read also leaves a line on the ``healthplatform.access`` log (who, what kind of record, which row id).
"""

from __future__ import annotations

import functools
import json
import logging
import uuid

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ImproperlyConfigured
from django.db.models import ForeignKey, Q
from django.http import HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from healthplatform.access import Caller
from healthplatform.audit.balp import audit_bundle
from healthplatform.audit.models import AccessEvent
from healthplatform.audit.services import reads_record
from healthplatform.client_address import client_address
from mpi.models import Identity, Person

# The admin's reads go to the same access log as the FHIR API's (who, what kind of record, which id; never
# names or identifiers).
access_log = logging.getLogger("healthplatform.access")

DEFAULT_READ_VIEWS = ("changelist_view", "change_view")


def admin_read_log(request, kind: str, object_id) -> None:
    """One read of a record (``kind`` and its id, "-" for a list) by the logged-in administrator."""
    access_log.info(
        "admin read user=%s record=%s id=%s",
        request.user.get_username(),
        kind,
        object_id,
        extra={"client": f"admin:{request.user.get_username()}", "record": kind, "record_id": str(object_id)},
    )


def person_paths(model) -> list[str]:
    """The lookups from a row of ``model`` to the primary key of each person it shows: its own for a person,
    a foreign key to a person, or through a foreign key to an identity."""
    if model is Person:
        return ["pk"]
    paths = []
    for field in model._meta.get_fields():
        if isinstance(field, ForeignKey) and field.related_model is Person:
            paths.append(field.attname)
        elif isinstance(field, ForeignKey) and field.related_model is Identity:
            paths.append(f"{field.name}__person_id")
    return paths


def persons_shown(model_admin, object_ids) -> set[int]:
    """The persons whose records the rows ``object_ids`` of ``model_admin``'s model show (one query)."""
    keys = [k for k in object_ids if k not in (None, "")]
    if not keys:
        return set()
    own = getattr(model_admin, "record_persons", None)
    if own is not None:
        return {pk for pk in own(keys) if pk is not None}
    rows = model_admin.model._default_manager.filter(pk__in=keys).values_list(*person_paths(model_admin.model))
    return {pk for row in rows for pk in row if pk is not None}


def _page_rows(request, response, *, listing: bool, object_id) -> list | None:
    """The primary keys of the rows a page showed, or None when it showed no record (a redirect, an error)."""
    if getattr(response, "status_code", None) != 200:
        return None
    context = getattr(response, "context_data", None) or {}
    if listing and "cl" in context:
        return [row.pk for row in context["cl"].result_list]  # the page's rows, evaluated once for the template too
    if listing:
        # An action's confirmation page (merge, unlink): it shows the rows it was given.
        return request.POST.getlist(ACTION_CHECKBOX_NAME) if request.method == "POST" else None
    return [object_id]


def _recorded(view, model_admin, kind: str, *, listing: bool):
    @functools.wraps(view)
    def read(request, *args, **kwargs):
        object_id = "-" if listing else (args[0] if args else kwargs.get("object_id", kwargs.get("pk", "-")))
        admin_read_log(request, f"{kind}-list" if listing else kind, object_id)
        response = view(request, *args, **kwargs)
        rows = _page_rows(request, response, listing=listing, object_id=object_id)
        if rows:
            # Before the page is rendered: if the audit cannot be written, the page is an error, not the record.
            reads_record(
                caller=Caller(None, request.user.get_username()),
                person_ids=persons_shown(model_admin, rows),
                door=AccessEvent.Door.ADMIN,
                what=f"admin {kind} list" if listing else f"admin {kind}",
                action="search" if listing else "read",
                client_address=client_address(request),
                query=f"{request.method} {request.get_full_path()}",
            )
        return response

    return read


def read_logging_install(site) -> None:
    """Makes every page of ``site`` that shows resident records record each read (see the module's docstring)."""
    for model_admin in site._registry.values():
        kind = getattr(model_admin, "record_kind", "")
        if not kind or getattr(model_admin, "_reads_logged", False):
            continue
        if getattr(model_admin, "record_persons", None) is None and not person_paths(model_admin.model):
            raise ImproperlyConfigured(
                f"{type(model_admin).__name__}: record_kind {kind!r}, but the audit cannot tell whose record a "
                f"{model_admin.model.__name__} is; give it record_persons(object_ids)"
            )
        for name in getattr(model_admin, "read_views", DEFAULT_READ_VIEWS):
            view = getattr(model_admin, name)
            setattr(model_admin, name, _recorded(view, model_admin, kind, listing=name == "changelist_view"))
        model_admin._reads_logged = True


# --- the audit in the admin: read by auditors, changed by nobody ------------------------------------------


@admin.register(AccessEvent)
class AccessEventAdmin(admin.ModelAdmin):
    """Every read of a resident's record. Nobody adds, changes or deletes one here — superusers included: an
    audit trail that its readers can edit proves nothing."""

    list_display = ["at", "person_link", "door", "actor", "institution", "source", "what", "reason", "break_glass"]
    list_filter = ["door", "break_glass", "reason", "action", ("institution", admin.RelatedFieldListFilter)]
    list_select_related = ["person", "institution", "source"]
    date_hierarchy = "at"
    ordering = ["-at", "-pk"]
    show_full_result_count = False  # millions of rows: no COUNT(*) per page
    search_help_text = _("A golden Patient id or a source Patient id (the resident), or who read (exact).")
    fields = [
        "at", "person_link", "door", "actor", "institution", "source", "client_address", "action", "what", "query",
        "reason", "reason_text", "break_glass",
    ]  # fmt: skip
    readonly_fields = fields
    actions = ["export_audit_events"]
    # A search box (the lookups are ours: get_search_results).
    search_fields = ["actor"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    has_delete_permission = has_change_permission  # nor deleted: the same rule

    def get_search_results(self, request, queryset, search_term):
        """A uuid finds the reads of that resident (golden Patient id, or a source Patient id of theirs); anything
        else, the reads by that actor (exact: the index's order)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            key = uuid.UUID(term)
        except ValueError:
            return queryset.filter(actor=term), False
        persons = Person.objects.filter(Q(uuid=key) | Q(identities__uuid=key)).values("pk")
        return queryset.filter(person_id__in=persons), False

    @admin.display(description=_("person (golden Patient id)"), ordering="person")
    def person_link(self, obj: AccessEvent) -> str:
        # The golden id, not the name: this list is read by auditors, the person's page (itself audited) has the rest.
        url = reverse("admin:mpi_person_change", args=[obj.person_id])
        return format_html('<a href="{}">{}</a>', url, obj.person.uuid)

    @admin.action(description=_("Export as FHIR AuditEvent (Bundle JSON)"), permissions=["view"])
    def export_audit_events(self, request, queryset):
        events = queryset.select_related("person", "institution", "source").order_by("-at", "-pk")
        bundle = audit_bundle(events, base_url=request.build_absolute_uri(reverse("fhirapi:base")))
        response = HttpResponse(
            json.dumps(bundle, ensure_ascii=False, indent=1), content_type="application/fhir+json; charset=utf-8"
        )
        response["Content-Disposition"] = 'attachment; filename="audit-events.json"'
        return response
