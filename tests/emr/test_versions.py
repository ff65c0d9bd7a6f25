"""Changing a stored document: metadata updates as new versions, optimistic locking, retirement."""

from __future__ import annotations

import copy

import pytest

from emr.models import DocumentVersion
from emr.selectors import document_version, document_versions
from emr.services import DocumentError, DocumentVersionConflict, document_retire, document_store, document_update
from tests.emr.factories import CDA, PDF, TEXT, reference, sha1_base64

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry(patient, source):
    stored, _ = document_store(
        identity=patient, source=source, reference=reference(description="出院小结（初稿）"), content=PDF, actor="feed"
    )
    return stored


def edited(entry, **changes) -> dict:
    resource = copy.deepcopy(entry.resource)
    resource.update(changes)
    return resource


def test_update_makes_version_2_and_keeps_version_1(entry):
    updated = document_update(entry=entry, reference=edited(entry, description="出院小结"), actor="feed")

    assert updated.version_id == 2 and updated.title == "出院小结"
    assert [v.version_id for v in document_versions(updated)] == [1, 2]
    first, second = document_version(updated, 1), document_version(updated, "2")
    assert first.resource["description"] == "出院小结（初稿）" and first.resource["meta"]["versionId"] == "1"
    assert second.resource["description"] == "出院小结" and second.resource["meta"]["versionId"] == "2"
    assert second.method == "update" and second.actor == "feed"
    assert document_version(updated, 3) is None and document_version(updated, "x") is None


def test_update_can_reclassify_a_document(entry):
    ref = edited(entry, type={"coding": [{"system": "http://loinc.org", "code": "11502-2"}]})
    updated = document_update(entry=entry, reference=ref, actor="feed")
    assert (updated.type_code, updated.class_code) == ("11502-2", "lab-report")


def test_update_identical_to_the_current_version_makes_no_new_version(entry):
    document_update(entry=entry, reference=edited(entry), actor="feed")
    assert DocumentVersion.objects.filter(entry=entry).count() == 1


def test_update_with_a_stale_expected_version_is_refused(entry):
    document_update(entry=entry, reference=edited(entry, description="第二版"), actor="a", expected_version=1)
    with pytest.raises(DocumentVersionConflict) as err:
        document_update(entry=entry, reference=edited(entry, description="第三版"), actor="b", expected_version=1)
    assert err.value.current_version == 2
    assert err.value.element == "DocumentReference.meta.versionId"
    assert DocumentVersion.objects.filter(entry=entry).count() == 2


def test_content_cannot_change_through_an_update(entry):
    ref = edited(entry)
    ref["content"][0]["attachment"].update(size=len(CDA), hash=sha1_base64(CDA))
    with pytest.raises(DocumentError) as err:
        document_update(entry=entry, reference=ref, actor="feed")
    assert err.value.element == "DocumentReference.content[0].attachment.size"

    ref = edited(entry)
    ref["content"][0]["attachment"]["hash"] = sha1_base64(TEXT)
    with pytest.raises(DocumentError) as err:
        document_update(entry=entry, reference=ref, actor="feed")
    assert err.value.element == "DocumentReference.content[0].attachment.hash"


def test_business_id_cannot_change_through_an_update(entry):
    ref = edited(entry, masterIdentifier={"system": "urn:oid:2.16.156.1.99", "value": "OTHER"})
    with pytest.raises(DocumentError) as err:
        document_update(entry=entry, reference=ref, actor="feed")
    assert err.value.element == "DocumentReference.masterIdentifier"


def test_update_cannot_mark_a_document_superseded(entry):
    with pytest.raises(DocumentError) as err:
        document_update(entry=entry, reference=edited(entry, status="superseded"), actor="feed")
    assert err.value.element == "DocumentReference.status"


def test_retire_marks_entered_in_error_as_a_new_version(entry):
    retired = document_retire(entry=entry, actor="admin:root", reason="wrong patient", expected_version=1)

    assert retired.status == "entered-in-error" and retired.version_id == 2
    last = document_version(retired, 2)
    assert (last.method, last.reason, last.resource["status"]) == ("retire", "wrong patient", "entered-in-error")
    assert document_version(retired, 1).resource["status"] == "current"
    with pytest.raises(DocumentError, match="already"):
        document_retire(entry=retired, actor="admin:root", reason="again")
    with pytest.raises(DocumentError):
        document_update(entry=retired, reference=edited(retired, description="x"), actor="feed")


def test_retire_with_a_stale_expected_version_is_refused(entry):
    document_update(entry=entry, reference=edited(entry, description="第二版"), actor="feed")
    with pytest.raises(DocumentVersionConflict):
        document_retire(entry=entry, actor="admin:root", reason="wrong patient", expected_version=1)
    entry.refresh_from_db()
    assert entry.status == "current"


def test_retire_needs_a_reason(entry):
    with pytest.raises(DocumentError, match="why"):
        document_retire(entry=entry, actor="admin:root", reason=" ")


def test_update_to_entered_in_error_retires_the_document(entry):
    retired = document_update(entry=entry, reference=edited(entry, status="entered-in-error"), actor="feed")
    assert retired.status == "entered-in-error"
    assert document_version(retired, 2).method == "retire"
