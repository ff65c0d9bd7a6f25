"""Shared documents opened in the page — a PDF in a frame, CDA and text rendered readably and safely — and their
content served only to a clinician who may open the resident."""

from __future__ import annotations

from healthplatform.audit.models import AccessEvent
from tests.viewer.scenario import MINIMAL_PDF, PASSWORD


def content(client, region, document: str):
    return client.get(f"/viewer/patient/{region.wang}/document/{document}/content")


def test_a_pdf_opens_inline_in_a_frame_of_the_page(doctor, region):
    page = doctor.get(f"/viewer/patient/{region.wang}/document/{region.documents.pdf}/").content.decode()

    assert 'id="pdf-frame"' in page
    assert f"/viewer/patient/{region.wang}/document/{region.documents.pdf}/content" in page
    response = content(doctor, region, region.documents.pdf)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("inline")
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == MINIMAL_PDF


def test_a_cda_document_is_rendered_readably_and_its_markup_never_runs(doctor, region):
    page = doctor.get(f"/viewer/patient/{region.wang}/document/{region.documents.cda}/").content.decode()

    cda = page[page.index('id="cda"') :]
    assert "<h3>出院诊断</h3>" in cda
    assert "<li>血糖控制欠佳</li>" in cda
    assert "<td>二甲双胍</td>" in cda
    assert "<script>" not in cda
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in cda


def test_a_text_document_is_shown_as_text(doctor, region):
    page = doctor.get(f"/viewer/patient/{region.wang}/document/{region.documents.text}/").content.decode()

    assert "主诉：口渴多饮三月。" in page[page.index('id="text"') :]


def test_opening_a_document_is_recorded(doctor, region):
    doctor.get(f"/viewer/patient/{region.wang}/document/{region.documents.cda}/")
    content(doctor, region, region.documents.pdf)

    whats = set(AccessEvent.objects.filter(person__uuid=region.wang).values_list("what", flat=True))
    assert f"viewer document DocumentReference/{region.documents.cda}" in whats
    assert f"viewer document content DocumentReference/{region.documents.pdf}" in whats


def test_document_content_is_refused_to_a_clinician_without_a_reason(client, region):
    client.post("/viewer/login/", {"username": "doctor_c", "password": PASSWORD})

    for document in (region.documents.pdf, region.documents.cda, region.documents.text):
        assert content(client, region, document).status_code == 403
        page = client.get(f"/viewer/patient/{region.wang}/document/{document}/")
        assert page.status_code == 302 and "/reason/" in page["Location"]


def test_document_content_is_refused_to_an_anonymous_request(client, region):
    for document in (region.documents.pdf, region.documents.cda, region.documents.text):
        assert content(client, region, document).status_code == 403


def test_a_document_of_another_resident_is_not_found_under_this_one(doctor, region):
    response = doctor.get(f"/viewer/patient/{region.zhao}/document/{region.documents.pdf}/content")

    assert response.status_code == 404


def test_a_cda_with_a_doctype_is_shown_as_text_not_parsed():
    from healthplatform.viewer.documents import cda_read

    hostile = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><ClinicalDocument xmlns="urn:hl7-org:v3"/>'
    assert cda_read(hostile) is None
