"""Reads in the Django admin, logged as reads of resident records."""

from __future__ import annotations

import logging

from django.contrib import admin

# The admin's reads go to the same access log as the FHIR API's (who, what kind of record, which id; never
# names or identifiers).
access_log = logging.getLogger("healthplatform.access")


def admin_read_log(request, kind: str, object_id) -> None:
    """One read of a record (``kind`` and its id, "-" for a list) by the logged-in administrator."""
    access_log.info(
        "admin read user=%s record=%s id=%s",
        request.user.get_username(),
        kind,
        object_id,
        extra={"client": f"admin:{request.user.get_username()}", "record": kind, "record_id": str(object_id)},
    )


class ReadLoggedAdmin(admin.ModelAdmin):
    """A model admin whose list and detail pages are logged as reads of resident records."""

    record_kind = ""

    def changelist_view(self, request, extra_context=None):
        admin_read_log(request, f"{self.record_kind}-list", "-")
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        admin_read_log(request, self.record_kind, object_id)
        return super().change_view(request, object_id, form_url, extra_context)
