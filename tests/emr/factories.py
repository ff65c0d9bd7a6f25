"""Builders of synthetic DocumentReferences and document content for the document store tests."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools

from emr.codes import DOCUMENT_CLASS_SYSTEM, LOINC
from mpi.demographics import Demographics
from mpi.identifiers import make_resident_id
from mpi.services import identity_register
from registry.services import source_system_register
from tests.registry.factories import InstitutionFactory

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
CDA = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">'
    "<title>出院小结</title><component><structuredBody/></component></ClinicalDocument>\n"
).encode()
TEXT = "检验报告：血常规未见异常。\n".encode()

_numbers = itertools.count(1)


def sha1_base64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()  # noqa: S324 - FHIR R4 Attachment.hash


def source_system(institution=None, kind="EMR"):
    """A registered feed of a (new) institution."""
    n = next(_numbers)
    source, _secret = source_system_register(
        institution=institution or InstitutionFactory(),
        kind=kind,
        name=f"电子病历{n}",
        sending_application=f"EMR{n}",
        sending_facility=f"H{n}",
    )
    return source


def identity(authority: str, local_id: str, *, name="王小明", resident_number=None, birth="1980-05-03"):
    """A registered identity (and its person); the same resident number and name link to one person."""
    registration = identity_register(
        assigning_authority=authority,
        local_id=local_id,
        demographics=Demographics(
            name=name,
            sex="male",
            birth_date=birth,
            resident_id=make_resident_id("440106", dt.date.fromisoformat(birth), resident_number)
            if resident_number
            else None,
        ),
    )
    return registration.identity


def reference(
    *,
    business_id: str | None = None,
    content: bytes | None = PDF,
    content_type: str | None = "application/pdf",
    loinc: str | None = "18842-5",
    document_class: str | None = None,
    date: str = "2024-03-01T09:30:00+08:00",
    inline: bool = False,
    **extra,
) -> dict:
    """A DocumentReference as a feed sends it (MHD-style), with size and SHA-1 hash of ``content``."""
    attachment: dict = {"title": "出院小结"}
    if content_type:
        attachment["contentType"] = content_type
    if content is not None:
        attachment["size"] = len(content)
        attachment["hash"] = sha1_base64(content)
        if inline:
            attachment["data"] = base64.b64encode(content).decode()
    resource = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:oid:2.16.156.1.99", "value": business_id or f"DOC-{next(_numbers)}"},
        "status": "current",
        "date": date,
        "subject": {"reference": "Patient/local-1"},
        "content": [{"attachment": attachment}],
    }
    if loinc:
        resource["type"] = {"coding": [{"system": LOINC, "code": loinc}]}
    if document_class:
        resource["category"] = [{"coding": [{"system": DOCUMENT_CLASS_SYSTEM, "code": document_class}]}]
    resource.update(extra)
    return resource
