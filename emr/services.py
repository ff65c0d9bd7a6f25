"""Writes to the document store: store a DocumentReference with its content, update, replace and retire it.

Every change of a document's DocumentReference is a new version (``DocumentVersion``, append-only);
the content bytes never change once stored. Errors are ``DocumentError`` naming the element at fault.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import copy
import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass, field

import pydantic
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from fhir.resources.R4B.documentreference import DocumentReference

from emr.codes import DOCUMENT_CLASS_SYSTEM, DOCUMENT_CLASSES, LOINC, LOINC_TO_CLASS
from emr.errors import DocumentError, DocumentForbidden, DocumentVersionConflict
from emr.models import DocumentEntry, DocumentVersion
from emr.storage import document_storage
from healthplatform.fhirvalidation import element_path
from mpi.inserts import Rows, rows_insert_chain
from mpi.models import Identity, uuid7

__all__ = [
    "DocumentError",
    "DocumentForbidden",
    "DocumentVersionConflict",
    "document_retire",
    "document_store",
    "document_update",
    "documents_sweep",
]

# What the store accepts: PDF, CDA (XML) and plain text, with the file extension each is kept under.
# application/cda+xml is the IANA type for CDA; XDS and MHD senders mostly label CDA text/xml.
ACCEPTED_CONTENT_TYPES = {
    "application/pdf": ".pdf",
    "text/xml": ".xml",
    "application/xml": ".xml",
    "application/cda+xml": ".xml",
    "application/hl7-v3+xml": ".xml",
    "text/plain": ".txt",
}
XML_TYPES = {t for t, ext in ACCEPTED_CONTENT_TYPES.items() if ext == ".xml"}
DEFAULT_MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

# relatesTo.target of a replacement: DocumentReference/<id>, relative or absolute, optionally versioned.
_TARGET_REFERENCE = re.compile(r"(?:^|/)DocumentReference/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$")

DR = "DocumentReference"
ATTACHMENT = f"{DR}.content[0].attachment"


@dataclass
class _Checked:
    """A DocumentReference that passed validation, with the values the store indexes."""

    resource: dict
    model: DocumentReference
    master_system: str
    master_value: str
    status: str
    type_system: str
    type_code: str
    type_display: str
    class_code: str
    title: str
    date: dt.datetime | None
    replaces: list[tuple[int, dict]] = field(default_factory=list)


@dataclass
class _Content:
    """Content bytes that passed the attachment's checks."""

    data: bytes
    content_type: str
    sha1: str
    sha256: str


# --- validation -------------------------------------------------------------------------------------------


def _validated(reference: dict) -> DocumentReference:
    if not isinstance(reference, dict):
        raise DocumentError("a DocumentReference must be a JSON object", element=DR)
    if reference.get("resourceType") != DR:
        raise DocumentError("the resource must be a DocumentReference", element=f"{DR}.resourceType")
    try:
        return DocumentReference.model_validate(reference)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        path = element_path(DR, first.get("loc", ()))
        # The input value is never echoed: it may be patient data.
        message = " ".join(str(first.get("msg", "invalid value")).split())
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise DocumentError(f"{message}{more}", element=path) from None
    except (TypeError, AttributeError, ValueError, RecursionError):
        # fhir_core's own checks raise these on some wrong JSON types (a number where a url belongs).
        raise DocumentError("a value of the wrong JSON type (a number or an object where text belongs)") from None


def _aware(value) -> dt.datetime | None:
    """A FHIR date or dateTime as an aware datetime (a bare date is midnight in the platform's time zone)."""
    if isinstance(value, dt.datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    if isinstance(value, dt.date):
        return timezone.make_aware(dt.datetime.combine(value, dt.time()))
    # Partial dates ("2024-01") are left out: they cannot order documents.
    return None


def _type_of(model: DocumentReference) -> tuple[str, str, str]:
    if model.type is None:
        return "", "", ""
    codings = [c for c in model.type.coding or [] if c.code]
    # LOINC first: it is what consumers search by (MHD type), whatever local coding comes beside it.
    codings.sort(key=lambda c: c.system != LOINC)
    if not codings:
        return "", "", model.type.text or ""
    coding = codings[0]
    return coding.system or "", coding.code, coding.display or model.type.text or ""


def _class_of(model: DocumentReference, type_system: str, type_code: str) -> str:
    for i, category in enumerate(model.category or []):
        for j, coding in enumerate(category.coding or []):
            if coding.system == DOCUMENT_CLASS_SYSTEM:
                if coding.code not in DOCUMENT_CLASSES:
                    raise DocumentError(
                        f"unknown document class; the classes of {DOCUMENT_CLASS_SYSTEM} are "
                        + ", ".join(DOCUMENT_CLASSES),
                        element=f"{DR}.category[{i}].coding[{j}].code",
                    )
                return coding.code
    if type_system == LOINC and type_code in LOINC_TO_CLASS:
        return LOINC_TO_CLASS[type_code]
    raise DocumentError(
        f"the document class is missing: add a category coding of {DOCUMENT_CLASS_SYSTEM} ("
        + ", ".join(DOCUMENT_CLASSES)
        + ") or a LOINC type ("
        + ", ".join(sorted(LOINC_TO_CLASS))
        + ")",
        element=f"{DR}.category",
    )


def _checked(reference: dict) -> _Checked:
    """Validates a DocumentReference (fhir.resources R4B, then the store's own rules) and extracts its index values."""
    model = _validated(reference)
    status = reference.get("status")
    if status not in DocumentEntry.Status.values:
        raise DocumentError("status must be one of " + ", ".join(DocumentEntry.Status.values), element=f"{DR}.status")
    master = model.masterIdentifier
    if master is None or not master.system or not master.value:
        # MHD requires masterIdentifier: it is how a resend is recognised and how a replacement names its target.
        raise DocumentError(
            "the document's business id (masterIdentifier with system and value) is required",
            element=f"{DR}.masterIdentifier",
        )
    if len(master.system) > 255 or len(master.value) > 255:
        raise DocumentError("system and value are at most 255 characters", element=f"{DR}.masterIdentifier")
    if not model.content:
        raise DocumentError("a document needs one content element with its attachment", element=f"{DR}.content")
    if len(model.content) > 1:
        raise DocumentError(
            "this store keeps one attachment per DocumentReference; send each format as its own document",
            element=f"{DR}.content[1]",
        )
    type_system, type_code, type_display = _type_of(model)
    if len(type_system) > 255 or len(type_code) > 64:
        raise DocumentError("the type coding's system or code is too long", element=f"{DR}.type.coding")
    class_code = _class_of(model, type_system, type_code)
    attachment = model.content[0].attachment
    if attachment is None:
        raise DocumentError("a document's content needs its attachment", element=f"{DR}.content[0].attachment")
    title = model.description or attachment.title or type_display or DOCUMENT_CLASSES[class_code].display
    date = _aware(model.date)
    if date is None and model.context and model.context.period:
        date = _aware(model.context.period.start)
    replaces = []
    for i, relation in enumerate(model.relatesTo or []):
        if relation.code == "replaces":
            replaces.append((i, (reference["relatesTo"][i] or {}).get("target") or {}))
    return _Checked(
        resource=_normalised(reference),
        model=model,
        master_system=master.system,
        master_value=master.value,
        status=status,
        type_system=type_system,
        type_code=type_code,
        type_display=type_display[:255],
        class_code=class_code,
        title=title[:300],
        date=date,
        replaces=replaces,
    )


def _normalised(reference: dict) -> dict:
    """The JSON to keep: as received, without the inline content (it lives in the document storage, once)."""
    resource = copy.deepcopy(reference)
    resource.pop("id", None)
    for content in resource.get("content") or []:
        (content.get("attachment") or {}).pop("data", None)
    return resource


def _base_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"') or "utf-8"
    return "utf-8"


def _looks_like(base: str, data: bytes, content_type: str) -> bool:
    """Whether the bytes are what the content type says (a cheap check of the start, not a full parse)."""
    if base == "application/pdf":
        return data.startswith(b"%PDF-")
    if base in XML_TYPES:
        return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")
    try:
        data.decode(codecs.lookup(_charset(content_type)).name)
    except (LookupError, UnicodeDecodeError):
        return False
    return True


def _sniffed(data: bytes) -> str:
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return "text/xml"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise DocumentError(
            "the content is neither PDF, XML nor UTF-8 text: say what it is in contentType",
            element=f"{ATTACHMENT}.contentType",
        ) from None
    return "text/plain; charset=utf-8"


def _decoded(value: str, element: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise DocumentError("not valid base64", element=element) from None


def _content_checked(checked: _Checked, reference: dict, content: bytes | None) -> _Content:
    """The content bytes, checked against attachment.size, attachment.hash and attachment.contentType."""
    attachment = reference["content"][0]["attachment"]
    inline = attachment.get("data")
    if inline is not None:
        inline = _decoded(inline, f"{ATTACHMENT}.data")
        if content is not None and content != inline:
            raise DocumentError(
                "attachment.data and the content sent beside it differ; send the content once",
                element=f"{ATTACHMENT}.data",
            )
        content = inline
    if not content:
        raise DocumentError(
            "the document content is missing: send it inline in attachment.data or as a Binary",
            element=f"{ATTACHMENT}.data",
        )
    limit = getattr(settings, "EMR_MAX_DOCUMENT_BYTES", DEFAULT_MAX_DOCUMENT_BYTES)
    if len(content) > limit:
        raise DocumentError(f"the content is larger than the {limit} bytes the store accepts", element=ATTACHMENT)
    sha1 = hashlib.sha1(content, usedforsecurity=False).digest()
    size = checked.model.content[0].attachment.size
    if size is not None and size != len(content):
        raise DocumentError(
            f"attachment.size says {size} bytes but the content has {len(content)}",
            element=f"{ATTACHMENT}.size",
        )
    if attachment.get("hash") is not None:
        claimed = _decoded(attachment["hash"], f"{ATTACHMENT}.hash")
        if len(claimed) != 20:
            # FHIR R4 Attachment.hash: "The calculated hash of the data using SHA-1. Represented using base64."
            raise DocumentError(
                f"attachment.hash is {len(claimed)} bytes long; FHIR R4 wants the base64 of the SHA-1 (20 bytes)",
                element=f"{ATTACHMENT}.hash",
            )
        if claimed != sha1:
            raise DocumentError(
                "attachment.hash is not the SHA-1 of the content: the content was altered or truncated on the way",
                element=f"{ATTACHMENT}.hash",
            )
    content_type = (attachment.get("contentType") or "").strip()
    if content_type:
        base = _base_type(content_type)
        if base not in ACCEPTED_CONTENT_TYPES:
            raise DocumentError(
                "the store keeps " + ", ".join(sorted(ACCEPTED_CONTENT_TYPES)) + f", not {base}",
                element=f"{ATTACHMENT}.contentType",
            )
        if not _looks_like(base, content, content_type):
            raise DocumentError(
                f"the content is not {content_type} (it does not start as one, or does not decode)",
                element=f"{ATTACHMENT}.contentType",
            )
    else:
        content_type = _sniffed(content)
    if len(content_type) > 100:
        raise DocumentError("contentType is at most 100 characters", element=f"{ATTACHMENT}.contentType")
    return _Content(content, content_type, sha1.hex(), hashlib.sha256(content).hexdigest())


# --- versions -----------------------------------------------------------------------------------------------


def _version_add(entry: DocumentEntry, resource: dict, *, actor: str, method: str, reason: str = "") -> None:
    """Makes ``resource`` the entry's next version: our id and meta.versionId/lastUpdated, the rest as sent."""
    version = _version_next(entry, resource, actor=actor, method=method, reason=reason)
    entry.save()
    version.save(force_insert=True)


def _version_next(
    entry: DocumentEntry, resource: dict, *, actor: str, method: str, reason: str = ""
) -> DocumentVersion:
    """Sets ``resource`` as the entry's next version (not saved) and returns that version's row (not saved)."""
    now = timezone.now()
    entry.version_id = (entry.version_id + 1) if entry.pk else 1
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    resource = {
        "resourceType": DR,
        "id": str(entry.uuid),
        **{k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")},
        "meta": {**meta, "versionId": str(entry.version_id), "lastUpdated": now.isoformat(timespec="milliseconds")},
    }
    entry.resource = resource
    return DocumentVersion(
        entry=entry,
        version_id=entry.version_id,
        resource=resource,
        recorded_at=now,
        actor=actor,
        method=method,
        reason=reason,
    )


def _locked(entry: DocumentEntry, expected_version: int | None) -> DocumentEntry:
    entry = DocumentEntry.objects.select_for_update().get(pk=entry.pk)
    if expected_version is not None and int(expected_version) != entry.version_id:
        raise DocumentVersionConflict(
            f"the document is at version {entry.version_id}, not {expected_version}: "
            "read it again and reapply the change",
            current_version=entry.version_id,
        )
    return entry


# --- store --------------------------------------------------------------------------------------------------


def document_store(
    *,
    identity: Identity,
    source,
    reference: dict,
    content: bytes | None,
    actor: str,
    author_institution=None,
    submission=None,
) -> tuple[DocumentEntry, bool]:
    """Stores a new document of ``identity`` sent by ``source``; returns it and whether it was created.

    ``content`` is the document's bytes (the caller decodes a Binary; inline attachment.data is decoded
    here when ``content`` is None). A resend of the same business id with the same content returns the
    stored document unchanged; the same business id with other content is refused (a correction is a new
    document that replaces the old one). ``relatesTo`` "replaces" supersedes its target. The author
    institution defaults to the source's institution; ``submission`` is the request or message that carried it.
    """
    checked = _checked(reference)
    if checked.status != DocumentEntry.Status.CURRENT:
        raise DocumentError(
            "a new document is 'current'; a document is superseded by sending its replacement and retired "
            "as entered-in-error by the store",
            element=f"{DR}.status",
        )
    body = _content_checked(checked, reference, content)
    existing = _by_business_id(source, checked)
    if existing is not None:
        return _resent(existing, identity, body), False

    storage = document_storage()
    entry_uuid = uuid7()
    today = timezone.localdate()
    name = storage.save(
        f"emr/{today:%Y/%m}/{entry_uuid}{ACCEPTED_CONTENT_TYPES[_base_type(body.content_type)]}",
        ContentFile(body.data),
    )
    try:
        with transaction.atomic():
            entry = DocumentEntry(
                uuid=entry_uuid,
                identity=identity,
                source=source,
                author_institution=author_institution or source.institution,
                master_identifier_system=checked.master_system,
                master_identifier_value=checked.master_value,
                status=DocumentEntry.Status.CURRENT,
                type_system=checked.type_system,
                type_code=checked.type_code,
                type_display=checked.type_display,
                class_code=checked.class_code,
                title=checked.title,
                date=checked.date or timezone.now(),
                content_name=name,
                content_type=body.content_type,
                size=len(body.data),
                sha256=body.sha256,
                sha1=body.sha1,
            )
            version = _version_next(entry, checked.resource, actor=actor, method=DocumentVersion.Method.CREATE)
            version.submission = submission
            # The entry and its first version in one statement on PostgreSQL.
            rows_insert_chain([Rows("entry", [entry]), Rows("version", [version], {"entry_id": "entry"})])
            for index, target in checked.replaces:
                _replace(entry, index, target, actor=actor)
    except IntegrityError:
        # A concurrent send of the same business id won the unique constraint: answer as for a resend.
        storage.delete(name)
        existing = _by_business_id(source, checked)
        if existing is None:
            raise
        return _resent(existing, identity, body), False
    except BaseException:
        # The row is not there, so neither should its file be. (A rollback of an outer transaction after
        # this returns leaves an unreferenced file; it is harmless and a sweep can remove it.)
        storage.delete(name)
        raise
    return entry, True


def _by_business_id(source, checked: _Checked) -> DocumentEntry | None:
    # A new document is the usual case: one indexed statement says so, the entry is read only when it exists
    # (the ORM's compiled SELECT costs several times the statement's CPU, on every document).
    sql = (
        f"SELECT id FROM {DocumentEntry._meta.db_table} WHERE source_id = %s "  # noqa: S608 (the model's table)
        "AND master_identifier_system = %s AND master_identifier_value = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [source.pk, checked.master_system, checked.master_value])
        row = cursor.fetchone()
    return DocumentEntry.objects.get(pk=row[0]) if row else None


def _resent(existing: DocumentEntry, identity: Identity, body: _Content) -> DocumentEntry:
    if existing.sha256 != body.sha256:
        raise DocumentError(
            f"this source already stored DocumentReference/{existing.uuid} under this business id with other "
            "content; a correction is a new document (new masterIdentifier) with relatesTo 'replaces' the old one",
            element=f"{DR}.masterIdentifier",
        )
    if existing.identity_id != identity.pk:
        raise DocumentError(
            "this source already stored this document for another of its patients; check the subject",
            element=f"{DR}.subject",
        )
    return existing


def _replace(entry: DocumentEntry, index: int, target: dict, *, actor: str) -> None:
    """Supersedes the document ``target`` names by ``entry`` (relatesTo[index] "replaces")."""
    element = f"{DR}.relatesTo[{index}].target"
    old = _target(entry, target, element)
    if old.source_id != entry.source_id:
        # Before anything else is said of it: another source's document is not this writer's to change, nor to
        # learn the state of (superseded by which document, entered in error).
        raise DocumentForbidden(
            "a document replaces only documents its own source system stored; this one was stored by another",
            element=element,
        )
    if old.pk == entry.pk:
        raise DocumentError("a document cannot replace itself", element=element)
    person_ids = dict(Identity.objects.filter(pk__in=[entry.identity_id, old.identity_id]).values_list("pk", "person"))
    if person_ids[entry.identity_id] != person_ids[old.identity_id]:
        raise DocumentError(
            f"DocumentReference/{old.uuid} belongs to another patient: only a document of the same person "
            "can be replaced",
            element=element,
        )
    if old.status == DocumentEntry.Status.SUPERSEDED:
        replacement = DocumentEntry.objects.values_list("uuid", flat=True).get(pk=old.replaced_by_id)
        raise DocumentError(
            f"DocumentReference/{old.uuid} was already replaced by DocumentReference/{replacement}; "
            "replace that one instead",
            element=element,
        )
    if old.status != DocumentEntry.Status.CURRENT:
        raise DocumentError(f"DocumentReference/{old.uuid} is entered-in-error and cannot be replaced", element=element)
    old.status = DocumentEntry.Status.SUPERSEDED
    old.replaced_by = entry
    _version_add(old, {**old.resource, "status": old.status}, actor=actor, method=DocumentVersion.Method.SUPERSEDE)


def _target(entry: DocumentEntry, target: dict, element: str) -> DocumentEntry:
    """The (locked) document a relatesTo target names: by reference, or by its business id from this source."""
    locked = DocumentEntry.objects.select_for_update()
    reference = target.get("reference")
    if reference:
        match = _TARGET_REFERENCE.search(reference)
        if match is None:
            raise DocumentError("the target must be a reference to DocumentReference/<id>", element=element)
        target_uuid = _uuid_or_none(match.group(1))
        old = locked.filter(uuid=target_uuid).first() if target_uuid else None
    elif isinstance(target.get("identifier"), dict) and target["identifier"].get("value"):
        identifier = target["identifier"]
        old = locked.filter(
            source_id=entry.source_id,
            master_identifier_system=identifier.get("system") or "",
            master_identifier_value=identifier["value"],
        ).first()
    else:
        raise DocumentError("name the replaced document by reference or by its masterIdentifier", element=element)
    if old is None:
        raise DocumentError("the replaced document is not in the store", element=element)
    return old


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


# --- update and retire ----------------------------------------------------------------------------------------


def document_update(
    *, entry: DocumentEntry, reference: dict, actor: str, expected_version: int | None = None
) -> DocumentEntry:
    """Replaces a document's metadata by ``reference`` as a new version; the content cannot change.

    ``expected_version`` (FHIR If-Match) refuses the update with ``DocumentVersionConflict`` when the
    document has moved on. A status of entered-in-error retires the document; an update identical to
    the current version makes no new version.
    """
    checked = _checked(reference)
    if reference.get("id") not in (None, str(entry.uuid)):
        raise DocumentError(f"the id must be the document's id, {entry.uuid}", element=f"{DR}.id")
    with transaction.atomic():
        entry = _locked(entry, expected_version)
        if entry.status == DocumentEntry.Status.ENTERED_IN_ERROR:
            raise DocumentError("the document is entered-in-error and can no longer change", element=f"{DR}.status")
        if (checked.master_system, checked.master_value) != (
            entry.master_identifier_system,
            entry.master_identifier_value,
        ):
            raise DocumentError(
                "the business id of a document cannot change; a different document is stored as a new one",
                element=f"{DR}.masterIdentifier",
            )
        method = DocumentVersion.Method.UPDATE
        if checked.status != entry.status:
            if checked.status != DocumentEntry.Status.ENTERED_IN_ERROR:
                raise DocumentError(
                    f"the status can only go from {entry.status} to entered-in-error "
                    "(a document is superseded by sending its replacement)",
                    element=f"{DR}.status",
                )
            method = DocumentVersion.Method.RETIRE
        if (reference.get("relatesTo") or []) != (entry.resource.get("relatesTo") or []):
            raise DocumentError(
                "relatesTo cannot change in an update: a replacement is a new document that replaces this one",
                element=f"{DR}.relatesTo",
            )
        _content_unchanged(entry, checked, reference)
        if _unversioned(entry.resource) == _unversioned(checked.resource):
            return entry
        entry.status = checked.status
        entry.type_system, entry.type_code = checked.type_system, checked.type_code
        entry.type_display, entry.class_code = checked.type_display, checked.class_code
        entry.title = checked.title
        entry.date = checked.date or entry.date
        _version_add(entry, checked.resource, actor=actor, method=method)
    return entry


def _unversioned(resource: dict) -> dict:
    """A DocumentReference without what the store sets itself (id, meta.versionId, meta.lastUpdated)."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    return {**{k: v for k, v in resource.items() if k not in ("id", "meta")}, "meta": meta}


def _content_unchanged(entry: DocumentEntry, checked: _Checked, reference: dict) -> None:
    """Refuses an update whose attachment describes other content than the stored one."""
    attachment = reference["content"][0]["attachment"]
    if attachment.get("data") is not None:
        data = _decoded(attachment["data"], f"{ATTACHMENT}.data")
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise DocumentError(
                "the content of a stored document cannot change; send a new document that replaces it",
                element=f"{ATTACHMENT}.data",
            )
    size = checked.model.content[0].attachment.size
    if size is not None and size != entry.size:
        raise DocumentError(
            f"attachment.size must stay {entry.size}: the content of a stored document cannot change",
            element=f"{ATTACHMENT}.size",
        )
    if attachment.get("hash") is not None and _decoded(attachment["hash"], f"{ATTACHMENT}.hash") != bytes.fromhex(
        entry.sha1
    ):
        raise DocumentError(
            "attachment.hash must stay the SHA-1 of the stored content, which cannot change",
            element=f"{ATTACHMENT}.hash",
        )
    content_type = attachment.get("contentType")
    if content_type and _base_type(content_type) != _base_type(entry.content_type):
        raise DocumentError(
            f"attachment.contentType must stay {entry.content_type}: the content of a stored document cannot change",
            element=f"{ATTACHMENT}.contentType",
        )


def document_retire(
    *, entry: DocumentEntry, actor: str, reason: str, expected_version: int | None = None
) -> DocumentEntry:
    """Marks a document entered-in-error (it was never right: wrong patient, wrong file) as a new version.

    The content stays, for the audit trail; a search by status=current leaves it out.
    """
    reason = (reason or "").strip()
    if not reason:
        raise DocumentError("say why the document is entered in error")
    with transaction.atomic():
        entry = _locked(entry, expected_version)
        if entry.status == DocumentEntry.Status.ENTERED_IN_ERROR:
            raise DocumentError("the document is already entered-in-error", element=f"{DR}.status")
        entry.status = DocumentEntry.Status.ENTERED_IN_ERROR
        _version_add(
            entry,
            {**entry.resource, "status": entry.status},
            actor=actor,
            method=DocumentVersion.Method.RETIRE,
            reason=reason,
        )
    return entry


# --- orphaned content -----------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    checked: int = 0  # content files looked at
    orphaned: list[str] = field(default_factory=list)  # unreferenced and old enough: deleted (unless a dry run)


def documents_sweep(*, older_than: dt.timedelta, dry_run: bool = False, batch: int = 1000) -> SweepReport:
    """Deletes content files that no document row names and that are older than ``older_than``.

    A document's content is saved before its row is written (so that an answered request never names a
    missing file); when the transaction around the row rolls back — a FHIR transaction Bundle with a bad
    entry after its DocumentReference — the file stays behind without a row. The age margin keeps files of
    transactions still in flight.
    """
    storage = document_storage()
    cutoff = timezone.now() - older_than
    report = SweepReport()
    pending: dict[str, uuid.UUID] = {}  # content name -> the entry uuid it is named after

    def settle() -> None:
        # Content is saved under the entry's uuid (emr/YYYY/MM/<uuid>.<ext>): looked up by the unique uuid.
        known = set(DocumentEntry.objects.filter(uuid__in=pending.values()).values_list("content_name", flat=True))
        for name in pending:
            if name not in known and storage.get_modified_time(name) < cutoff:
                report.orphaned.append(name)
                if not dry_run:
                    storage.delete(name)
        pending.clear()

    for name in _content_names(storage, "emr"):
        entry_uuid = _stem_uuid(name)
        if entry_uuid is None:
            continue  # not a name the store gives: not ours to delete
        report.checked += 1
        pending[name] = entry_uuid
        if len(pending) >= batch:
            settle()
    if pending:
        settle()
    return report


def _content_names(storage, folder: str):
    if not storage.exists(folder):
        return
    folders, files = storage.listdir(folder)
    for name in sorted(files):
        yield f"{folder}/{name}"
    for sub in sorted(folders):
        yield from _content_names(storage, f"{folder}/{sub}")


def _stem_uuid(name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(name.rsplit("/", 1)[-1].split(".", 1)[0])
    except ValueError:
        return None
