"""Storing documents: content kept byte for byte, attachment checks, validation, resends, replacements."""

from __future__ import annotations

import base64
import hashlib

import pytest

from emr.models import DocumentEntry, DocumentVersion
from emr.selectors import document_content, document_get
from emr.services import DocumentError, document_store
from tests.emr import factories
from tests.emr.factories import CDA, PDF, TEXT, reference

pytestmark = pytest.mark.django_db


def store(identity, source, ref, content=PDF, actor="feed:test"):
    return document_store(identity=identity, source=source, reference=ref, content=content, actor=actor)


def read_back(entry) -> bytes:
    handle, _mime, _size = document_content(entry)
    with handle:
        return handle.read()


@pytest.mark.parametrize(
    ("content", "content_type", "loinc", "document_class"),
    [
        (PDF, "application/pdf", "18842-5", "discharge-summary"),
        (CDA, "text/xml", "34133-9", "outpatient-summary"),
        (TEXT, "text/plain; charset=utf-8", "11502-2", "lab-report"),
    ],
    ids=["pdf", "cda", "text"],
)
def test_pdf_cda_and_text_are_stored_and_read_back_byte_for_byte(
    patient, source, document_folder, content, content_type, loinc, document_class
):
    entry, created = store(patient, source, reference(content=content, content_type=content_type, loinc=loinc), content)

    assert created
    assert read_back(entry) == content
    entry = document_get(entry.uuid)
    assert (entry.size, entry.content_type) == (len(content), content_type)
    assert entry.sha256 == hashlib.sha256(content).hexdigest()
    assert (entry.type_system, entry.type_code, entry.class_code) == ("http://loinc.org", loinc, document_class)
    assert entry.author_institution == source.institution
    assert entry.status == "current" and entry.version_id == 1
    # The file is in the configured document storage, not in the repository.
    assert (document_folder / entry.content_name).read_bytes() == content


def test_inline_attachment_data_is_decoded_and_not_kept_in_the_json(patient, source):
    entry, _ = store(patient, source, reference(content=CDA, content_type="application/cda+xml", inline=True), None)

    assert read_back(entry) == CDA
    assert "data" not in entry.resource["content"][0]["attachment"]
    assert entry.resource["id"] == str(entry.uuid)
    assert entry.resource["meta"]["versionId"] == "1" and entry.resource["meta"]["lastUpdated"]


def test_content_type_is_recognised_when_the_sender_gives_none(patient, source):
    entry, _ = store(patient, source, reference(content=PDF, content_type=None), PDF)
    assert entry.content_type == "application/pdf"


def test_class_comes_from_the_category_before_the_type(patient, source):
    entry, _ = store(patient, source, reference(loinc="11506-3", document_class="prescription"))
    assert (entry.type_code, entry.class_code) == ("11506-3", "prescription")


def test_document_without_a_class_is_refused_naming_the_category(patient, source):
    with pytest.raises(DocumentError) as err:
        store(patient, source, reference(loinc="11506-3"))
    assert err.value.element == "DocumentReference.category"


def test_size_mismatch_is_refused_naming_the_element(patient, source):
    ref = reference()
    ref["content"][0]["attachment"]["size"] = len(PDF) + 1
    with pytest.raises(DocumentError) as err:
        store(patient, source, ref)
    assert err.value.element == "DocumentReference.content[0].attachment.size"
    assert not DocumentEntry.objects.exists()


def test_hash_mismatch_is_refused_naming_the_element_and_leaves_no_file(patient, source, document_folder):
    ref = reference()
    ref["content"][0]["attachment"]["hash"] = factories.sha1_base64(PDF + b"tampered")
    with pytest.raises(DocumentError) as err:
        store(patient, source, ref)
    assert err.value.element == "DocumentReference.content[0].attachment.hash"
    assert "SHA-1" in err.value.message
    assert not document_folder.exists() or not any(p.is_file() for p in document_folder.rglob("*"))


def test_a_sha256_in_the_hash_is_refused_saying_r4_wants_sha1(patient, source):
    ref = reference()
    ref["content"][0]["attachment"]["hash"] = base64.b64encode(hashlib.sha256(PDF).digest()).decode()
    with pytest.raises(DocumentError, match="SHA-1") as err:
        store(patient, source, ref)
    assert err.value.element == "DocumentReference.content[0].attachment.hash"


def test_content_that_is_not_its_content_type_is_refused(patient, source):
    with pytest.raises(DocumentError) as err:
        store(patient, source, reference(content=TEXT, content_type="application/pdf"), TEXT)
    assert err.value.element == "DocumentReference.content[0].attachment.contentType"


def test_unsupported_content_type_is_refused(patient, source):
    with pytest.raises(DocumentError, match="application/pdf") as err:
        store(patient, source, reference(content=PDF, content_type="image/jpeg"), PDF)
    assert err.value.element == "DocumentReference.content[0].attachment.contentType"


def test_missing_content_is_refused(patient, source):
    with pytest.raises(DocumentError) as err:
        store(patient, source, reference(), None)
    assert err.value.element == "DocumentReference.content[0].attachment.data"


@pytest.mark.parametrize(
    ("change", "element"),
    [
        (lambda r: r.update(date="2024-03-01"), "DocumentReference.date"),
        (lambda r: r["content"][0]["attachment"].update(size="big"), "DocumentReference.content[0].attachment.size"),
        (lambda r: r.update(status="final"), "DocumentReference.status"),
        (lambda r: r.pop("masterIdentifier"), "DocumentReference.masterIdentifier"),
        (lambda r: r.update(content=[]), "DocumentReference.content"),
        (lambda r: r.update(unknownElement=1), "DocumentReference.unknownElement"),
        (lambda r: r.update(resourceType="Patient"), "DocumentReference.resourceType"),
    ],
)
def test_invalid_document_reference_is_refused_naming_the_element(patient, source, change, element):
    ref = reference()
    change(ref)
    with pytest.raises(DocumentError) as err:
        store(patient, source, ref)
    assert err.value.element == element


def test_resend_with_same_business_id_and_content_returns_the_stored_document(patient, source):
    ref = reference(business_id="DS-2024-0001")
    first, created = store(patient, source, ref)
    again, created_again = store(patient, source, reference(business_id="DS-2024-0001"))

    assert created and not created_again
    assert again.pk == first.pk
    assert DocumentEntry.objects.count() == 1 and DocumentVersion.objects.count() == 1


def test_same_business_id_with_other_content_is_refused(patient, source):
    store(patient, source, reference(business_id="DS-2024-0001"))
    with pytest.raises(DocumentError, match="replaces") as err:
        store(patient, source, reference(business_id="DS-2024-0001", content=CDA, content_type="text/xml"), CDA)
    assert err.value.element == "DocumentReference.masterIdentifier"
    assert DocumentEntry.objects.count() == 1


def test_same_business_id_from_another_source_is_another_document(patient, source):
    store(patient, source, reference(business_id="DS-1"))
    _, created = store(patient, factories.source_system(), reference(business_id="DS-1"))
    assert created and DocumentEntry.objects.count() == 2


def replacing(old, **kw):
    return reference(relatesTo=[{"code": "replaces", "target": {"reference": f"DocumentReference/{old.uuid}"}}], **kw)


def test_replacement_supersedes_the_old_document_and_links_replaced_by(patient, source):
    old, _ = store(patient, source, reference())
    new, _ = store(patient, source, replacing(old, content=CDA, content_type="text/xml"), CDA)

    old.refresh_from_db()
    assert old.status == "superseded" and old.replaced_by == new
    assert list(new.replaces.all()) == [old]
    assert new.resource["relatesTo"][0]["code"] == "replaces"
    # The status change is a version of the old DocumentReference; version 1 is kept.
    assert old.version_id == 2 and old.resource["status"] == "superseded"
    assert [v.method for v in old.versions.order_by("version_id")] == ["create", "supersede"]


def test_replacement_may_name_its_target_by_business_id(patient, source):
    old, _ = store(patient, source, reference(business_id="RX-1"))
    ref = reference(relatesTo=[{"code": "replaces", "target": {"identifier": old.resource["masterIdentifier"]}}])
    new, _ = store(patient, source, ref)
    old.refresh_from_db()
    assert old.replaced_by == new


def test_a_superseded_document_cannot_be_replaced_again(patient, source):
    old, _ = store(patient, source, reference())
    new, _ = store(patient, source, replacing(old))
    with pytest.raises(DocumentError, match=str(new.uuid)) as err:
        store(patient, source, replacing(old))
    assert err.value.element == "DocumentReference.relatesTo[0].target"


def test_a_document_of_another_person_cannot_be_replaced(patient, source):
    other = factories.identity("H-EMR", "MRN-2", name="李娜", birth="1990-01-01")
    assert other.person_id != patient.person_id
    old, _ = store(other, source, reference())
    with pytest.raises(DocumentError, match="another patient") as err:
        store(patient, source, replacing(old))
    assert err.value.element == "DocumentReference.relatesTo[0].target"
    old.refresh_from_db()
    assert old.status == "current" and DocumentEntry.objects.count() == 1


def test_a_document_of_another_identity_of_the_same_person_can_be_replaced(patient, source):
    elsewhere = factories.identity("H-OTHER", "X-9", resident_number=11)
    assert elsewhere.person_id == patient.person_id
    old, _ = store(elsewhere, source, reference())
    new, _ = store(patient, source, replacing(old))
    old.refresh_from_db()
    assert old.replaced_by == new


def test_replacing_an_unknown_document_is_refused(patient, source):
    ref = reference(relatesTo=[{"code": "replaces", "target": {"reference": "DocumentReference/nope"}}])
    with pytest.raises(DocumentError, match="not in the store"):
        store(patient, source, ref)
    assert not DocumentEntry.objects.exists()


def test_the_platforms_storage_has_the_content_on_disk_before_the_row_commits(
    patient, source, settings, tmp_path, monkeypatch
):
    import os

    folder = tmp_path / "durable"
    settings.STORAGES = {
        **settings.STORAGES,
        "documents": {"BACKEND": "emr.storage.DurableFileSystemStorage", "OPTIONS": {"location": str(folder)}},
    }
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd):  # records what is flushed, then flushes it
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    entry, _ = store(patient, source, reference(content=PDF))

    path = folder / entry.content_name
    assert read_back(entry) == PDF
    assert synced == [str(path), str(path.parent)]
