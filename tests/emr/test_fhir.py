"""FHIR renderings of stored documents: the DocumentReference as served and the content as a Binary."""

from __future__ import annotations

import base64

import pytest
from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.documentreference import DocumentReference

from emr.codes import DOCUMENT_CLASS_SYSTEM
from emr.fhir import binary_resource, document_reference_resource
from emr.selectors import document_version
from emr.services import document_store, document_update
from tests.emr.factories import CDA, reference, sha1_base64

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry(patient, source):
    stored, _ = document_store(
        identity=patient,
        source=source,
        reference=reference(content=CDA, content_type="text/xml", loinc="18842-5", inline=True),
        content=None,
        actor="feed",
    )
    return stored


def test_document_reference_has_our_id_subject_and_binary_url(entry, patient):
    resource = document_reference_resource(entry)

    DocumentReference.model_validate(resource)
    assert resource["id"] == str(entry.uuid) and resource["meta"]["versionId"] == "1"
    assert resource["subject"] == {"reference": f"Patient/{patient.uuid}"}
    attachment = resource["content"][0]["attachment"]
    assert attachment == {
        "title": "出院小结",
        "contentType": "text/xml",
        "url": f"Binary/{entry.uuid}",
        "size": len(CDA),
        "hash": sha1_base64(CDA),
    }
    # The class read from the LOINC type is made explicit in category.
    assert {"system": DOCUMENT_CLASS_SYSTEM, "code": "discharge-summary", "display": "出院小结"} in [
        c for cat in resource["category"] for c in cat["coding"]
    ]


def test_an_older_version_renders_as_it_was(entry):
    resource = dict(entry.resource, description="更正后的出院小结")
    updated = document_update(entry=entry, reference=resource, actor="feed")

    assert document_reference_resource(updated)["meta"]["versionId"] == "2"
    old = document_reference_resource(updated, document_version(updated, 1))
    assert old["meta"]["versionId"] == "1" and "description" not in old


def test_binary_carries_the_content_base64(entry):
    resource = binary_resource(entry)

    Binary.model_validate(resource)
    assert resource["contentType"] == "text/xml"
    assert base64.b64decode(resource["data"]) == CDA
    assert resource["securityContext"] == {"reference": f"DocumentReference/{entry.uuid}"}
