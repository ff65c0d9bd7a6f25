"""The archive's read-only admin: a staff user sees a fact, its earlier versions and the request that
carried it; nobody changes them there; every page is in the access log."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse

from ehr.models import Resource, Submission
from ehr.services import WriteItem, resources_write, submission_record

pytestmark = pytest.mark.django_db

OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "identifier": [{"system": "urn:h1:obs", "value": "L1"}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
}


def test_a_fact_its_versions_and_its_request_are_shown_read_only_and_logged(admin_client_zh, caplog):
    submission = submission_record(source=None, actor="test", request_line="POST /fhir/Observation", body="{}")
    resources_write(items=[WriteItem("Observation", OBSERVATION)], source=None, actor="test", submission=submission)
    first = Resource.objects.get()
    amended = WriteItem("Observation", {**OBSERVATION, "status": "amended"}, method="update", target=first)
    resources_write(items=[amended], source=None, actor="t", submission=None)
    resource = Resource.objects.get()
    with caplog.at_level(logging.INFO, logger="healthplatform.access"):
        page = admin_client_zh.get(reverse("admin:ehr_resource_change", args=[resource.pk]))
        listing = admin_client_zh.get(reverse("admin:ehr_resource_changelist") + "?q=L1")
    assert page.status_code == 200 and listing.status_code == 200
    content = page.content.decode()
    assert "amended" in content and "&quot;final&quot;" in content  # current and version 1
    assert resource.fhir_id in listing.content.decode()
    assert (
        admin_client_zh.get(reverse("admin:ehr_submission_change", args=[Submission.objects.get().pk])).status_code
        == 200
    )
    assert admin_client_zh.get(reverse("admin:ehr_resource_add")).status_code == 403
    assert any("record=clinical-resource" in r.getMessage() for r in caplog.records)
