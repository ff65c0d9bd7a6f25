"""Reads in the Django admin, logged as reads of resident records.

The stores' admin pages only say what they show: a ``ModelAdmin`` with a ``record_kind`` shows resident records
of that kind, on the views ``read_views`` names (its list and its detail page by default). The audit, not the
store, makes those pages log their reads (``read_logging_install``, run when the platform's app is ready, after
the admin has discovered every store's pages), so a store never imports the audit.
"""

from __future__ import annotations

import functools
import logging

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


def _logged(view, kind: str, *, listing: bool):
    @functools.wraps(view)
    def read(request, *args, **kwargs):
        if listing:
            admin_read_log(request, f"{kind}-list", "-")
        else:
            object_id = args[0] if args else kwargs.get("object_id", kwargs.get("pk", "-"))
            admin_read_log(request, kind, object_id)
        return view(request, *args, **kwargs)

    return read


def read_logging_install(site) -> None:
    """Makes every page of ``site`` that shows resident records log each read (see the module's docstring)."""
    for model_admin in site._registry.values():
        kind = getattr(model_admin, "record_kind", "")
        if not kind or getattr(model_admin, "_reads_logged", False):
            continue
        for name in getattr(model_admin, "read_views", DEFAULT_READ_VIEWS):
            view = getattr(model_admin, name)
            setattr(model_admin, name, _logged(view, kind, listing=name == "changelist_view"))
        model_admin._reads_logged = True
