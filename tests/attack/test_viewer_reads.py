"""Reads that escape the audit, in the clinician viewer: every page that shows something of a resident — their
name included — writes an access event of that resident (healthplatform.audit). The reason form named a
resident the clinician's institution does not know (to a clinician holding only a Patient id) and recorded
nothing (branch attack16)."""

from __future__ import annotations

import pytest

from healthplatform.audit.models import AccessEvent

pytestmark = pytest.mark.django_db


def _pages(region) -> dict[str, tuple[str, str, str]]:
    """page -> (resident's golden id, URL, something of the resident the page shows)."""
    li, wang = region.li, region.wang
    return {
        "reason form (unknown resident)": (li, f"/viewer/patient/{li}/reason/", "李娜"),
        "patient page": (wang, f"/viewer/patient/{wang}/", "王小明"),
        "fact page": (wang, f"/viewer/patient/{wang}/fact/Condition/{region.facts.diabetes}/", "2型糖尿病"),
        "document page": (wang, f"/viewer/patient/{wang}/document/{region.documents.text}/", "口渴多饮"),
        "document content": (wang, f"/viewer/patient/{wang}/document/{region.documents.text}/content", "口渴多饮"),
    }


@pytest.mark.parametrize(
    "page", ["reason form (unknown resident)", "patient page", "fact page", "document page", "document content"]
)
def test_every_viewer_page_showing_a_resident_records_the_read(doctor, region, page):
    person, url, shown = _pages(region)[page]
    response = doctor.get(url)
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert shown in body.decode()
    events = AccessEvent.objects.filter(person__uuid=person, door="viewer", actor="doctor_a")
    assert events.count() == 1, page
