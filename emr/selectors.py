"""Reads of the document store: one document, a person's or identity's documents (keyset pages), versions, content.

A person's documents are found through ``identity__person``: a merge or unmerge in the MPI moves
identities between persons, and the documents follow without a row of theirs being rewritten.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

from django.db.models import Q, QuerySet
from django.utils import timezone

from emr.errors import DocumentError
from emr.models import DocumentEntry, DocumentVersion
from emr.storage import document_storage

MAX_PAGE = 500


@dataclass(frozen=True)
class DocumentPage:
    """One page of documents, newest first; ``next_cursor`` reads the next page (None on the last)."""

    entries: list[DocumentEntry]
    next_cursor: str | None


def _base() -> QuerySet[DocumentEntry]:
    return DocumentEntry.objects.select_related("identity", "source", "author_institution", "replaced_by")


def document_get(document_id) -> DocumentEntry | None:
    """The document with this public id (a UUID or its text), or None."""
    try:
        key = document_id if isinstance(document_id, uuid.UUID) else uuid.UUID(str(document_id))
    except ValueError:
        return None
    return _base().filter(uuid=key).first()


def documents_for_person(person, **filters) -> DocumentPage:
    """A person's documents over every identity linked to them now, newest first (see ``_page`` for filters)."""
    return _page(_base().filter(identity__person=person), **filters)


def documents_for_person_id(person_id: int, **filters) -> DocumentPage:
    """``documents_for_person`` by the person's primary key (no need to load the person)."""
    return _page(_base().filter(identity__person_id=person_id), **filters)


def documents_for_identity(identity, **filters) -> DocumentPage:
    """The documents of one identity (how one source knows the patient), newest first."""
    return _page(_base().filter(identity=identity), **filters)


def _page(
    queryset: QuerySet[DocumentEntry],
    *,
    status: str | Iterable[str] | None = None,
    type: tuple[str | None, str] | None = None,  # (system, code): FHIR search "type"
    document_class: str | Iterable[str] | None = None,
    date_from: dt.date | dt.datetime | None = None,
    date_to: dt.date | dt.datetime | None = None,
    author_institution=None,
    limit: int = 50,
    after: str | None = None,
) -> DocumentPage:
    """Filters and one keyset page, ordered by date descending then id descending (no OFFSET).

    ``type`` is (system, code) with system None for any; ``date_from`` is inclusive and ``date_to``
    exclusive for a datetime, inclusive of the whole day for a date; ``after`` is a previous page's cursor.
    """
    if status:
        queryset = queryset.filter(status__in=[status] if isinstance(status, str) else list(status))
    if type:
        system, code = type
        queryset = queryset.filter(type_code=code, **({"type_system": system} if system is not None else {}))
    if document_class:
        classes = [document_class] if isinstance(document_class, str) else list(document_class)
        queryset = queryset.filter(class_code__in=classes)
    if date_from is not None:
        queryset = queryset.filter(date__gte=_instant(date_from))
    if date_to is not None:
        end = date_to if isinstance(date_to, dt.datetime) else date_to + dt.timedelta(days=1)
        queryset = queryset.filter(date__lt=_instant(end))
    if author_institution is not None:
        queryset = queryset.filter(author_institution=author_institution)
    if after:
        date, pk = _cursor_read(after)
        queryset = queryset.filter(Q(date__lt=date) | Q(date=date, pk__lt=pk))
    limit = max(1, min(int(limit), MAX_PAGE))
    rows = list(queryset.order_by("-date", "-pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return DocumentPage(rows, _cursor_make(rows[-1]) if more else None)


def _instant(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    return timezone.make_aware(dt.datetime.combine(value, dt.time()))


def _cursor_make(entry: DocumentEntry) -> str:
    raw = f"{entry.date.isoformat()}|{entry.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _cursor_read(cursor: str) -> tuple[dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        date, pk = raw.split("|")
        return dt.datetime.fromisoformat(date), int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise DocumentError("the paging cursor is not one this server made; start again from the first page") from None


def document_versions(entry: DocumentEntry) -> QuerySet[DocumentVersion]:
    """Every version of a document's DocumentReference, oldest first."""
    return DocumentVersion.objects.filter(entry=entry).order_by("version_id")


def document_version(entry: DocumentEntry, version_id) -> DocumentVersion | None:
    """One version of a document's DocumentReference, or None (also for a version id that is not a number)."""
    try:
        number = int(version_id)
    except (TypeError, ValueError):
        return None
    return DocumentVersion.objects.filter(entry=entry, version_id=number).first()


def document_content(entry: DocumentEntry) -> tuple[IO[bytes], str, int]:
    """The content of a document: an open binary file (the caller closes it), its MIME type and its size."""
    return document_storage().open(entry.content_name, "rb"), entry.content_type, entry.size


def document_sources(document_ids: set[str]) -> dict[str, tuple[str, int]]:
    """document id as given -> (its canonical id, the source system that stored it), for the ids that name a
    document (an id is a uuid, which may be written in capitals or without hyphens)."""
    keys: dict[uuid.UUID, list[str]] = {}
    for value in document_ids:
        try:
            keys.setdefault(uuid.UUID(str(value)), []).append(value)
        except ValueError:
            continue
    if not keys:
        return {}
    found = DocumentEntry.objects.filter(uuid__in=keys).values_list("uuid", "source_id")
    return {given: (str(u), s) for u, s in found for given in keys[u]}


def documents_of_identities(identity_ids: list[int], *, limit: int) -> list[DocumentEntry]:
    """Documents stored under any of these identities, newest first, at most ``limit`` (one query)."""
    return list(
        DocumentEntry.objects.filter(identity_id__in=identity_ids)
        .select_related("identity")
        .order_by("-date", "-pk")[:limit]
    )
