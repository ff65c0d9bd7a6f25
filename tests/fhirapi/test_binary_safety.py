"""Stored content served safely (issue 18): a document a hospital stored is the hospital's bytes, not a page of
ours. ``Binary/{id}`` (MHD ITI-68) hands out as an attachment whatever a browser would run (XML and XHTML with
their scripts, HTML, SVG), and shows inline only what it renders without running anything: PDF, raster images,
and text as ``text/plain``; every answer carries ``nosniff`` and a sandboxing Content-Security-Policy."""

from __future__ import annotations

import base64

import pytest

from tests.fhirapi.tenants import document_body, post

XHTML_SCRIPT = (
    b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><script>alert(document.cookie)</script></html>'
)


def _stored(world, content_type: str | None, data: bytes, value: str) -> str:
    body = document_body(f"Patient/{world.a.patient_id}", hospital=world.a.hospital, value=value)
    body["content"][0]["attachment"] = {"data": base64.b64encode(data).decode()}
    if content_type:  # without one, the store sniffs it (XML here)
        body["content"][0]["attachment"]["contentType"] = content_type
    response = post(world.a.client, "DocumentReference", body)
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.mark.parametrize(
    "content_type",
    ["text/xml", "application/xml", "application/cda+xml", "application/hl7-v3+xml", None],
)
def test_a_document_a_browser_would_run_is_served_as_an_attachment_never_inline(world, content_type):
    doc = _stored(world, content_type, XHTML_SCRIPT, f"X-{content_type}")

    response = world.a.client.get(f"/fhir/Binary/{doc}", headers={"accept": "*/*"})

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == XHTML_SCRIPT  # the hospital's bytes, unchanged
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    policy = response["Content-Security-Policy"]
    assert "sandbox" in policy and "default-src 'none'" in policy


@pytest.mark.parametrize(
    ("content_type", "served_as"),
    [
        ("application/pdf", "application/pdf"),
        ("text/plain", "text/plain; charset=utf-8"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
    ],
)
def test_a_document_rendered_without_running_anything_is_served_inline(world, content_type, served_as):
    data = b"%PDF-1.4\n%%EOF\n" if content_type == "application/pdf" else b"discharge summary"
    doc = _stored(world, content_type, data, f"I-{content_type}")

    response = world.a.client.get(f"/fhir/Binary/{doc}")

    assert response.status_code == 200
    assert response["Content-Type"] == served_as
    assert response["Content-Disposition"].startswith("inline")
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("content_type", "served_as", "inline"),
    [
        ("application/pdf", "application/pdf", True),
        ("image/png", "image/png", True),
        ("IMAGE/JPEG", "image/jpeg", True),
        ("text/plain; charset=GB18030", "text/plain; charset=GB18030", True),
        ("text/plain", "text/plain; charset=utf-8", True),
        ("text/xml", "text/xml", False),
        ("text/html; charset=utf-8", "text/html; charset=utf-8", False),
        ("image/svg+xml", "image/svg+xml", False),
        ("application/xhtml+xml", "application/xhtml+xml", False),
        ("", "application/octet-stream", False),
        ("text/plain\r\nX-Injected: 1", "application/octet-stream", False),
    ],
)
def test_only_types_shown_without_running_anything_are_inline(content_type, served_as, inline):
    """The one rule every place that serves a stored document follows (FHIR Binary, the viewer), for the types
    the store takes today and those it may take tomorrow (images): SVG and (X)HTML carry script."""
    from healthplatform.content_security import document_presentation

    assert document_presentation(content_type) == (served_as, inline)


def test_the_binary_resource_keeps_the_documents_own_content_type(world):
    """The FHIR Binary resource (JSON, data base64) is not rendered by a browser: it says the stored type."""
    doc = _stored(world, "text/xml", XHTML_SCRIPT, "X-json")

    response = world.a.client.get(f"/fhir/Binary/{doc}", headers={"accept": "application/fhir+json"})

    assert response.json()["contentType"] == "text/xml"
