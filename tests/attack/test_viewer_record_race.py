"""The patient page reads the record of the person its access check found (``person_record(person=...)``, the
identities prefetched once): an identity unlinked from the person between the check and the read is another
resident's now, and its facts must not be shown on the page of the person it left — to a clinician whose
institution does not know that other resident, without a stated reason, and audited as a read of the wrong
person (branch attack-today)."""

from __future__ import annotations

import pytest

from healthplatform.audit.models import AccessEvent
from healthplatform.viewer import views
from mpi.models import Identity
from mpi.services.manual import identity_unlink

pytestmark = pytest.mark.django_db


def test_an_identity_unlinked_between_the_access_check_and_the_read_is_not_read_as_the_persons(
    doctor, region, monkeypatch
):
    checked = views.access_decide

    def check_then_unlink(request, **kwargs):
        access = checked(request, **kwargs)
        # Meanwhile a data steward decides hospital B's 王小明 is someone else.
        identity_unlink(identity=Identity.objects.get(local_id="B-1"), actor="steward", reason="different people")
        return access

    monkeypatch.setattr(views, "access_decide", check_then_unlink)
    page = doctor.get(f"/viewer/patient/{region.wang}/").content.decode()
    monkeypatch.setattr(views, "access_decide", checked)

    assert "二甲双胍片" in page  # A's own facts of the person
    for b_only in ("呼吸内科住院", "注射用青霉素钠", "胸部CT", "区中心医院"):
        assert b_only not in page, b_only
    separated = Identity.objects.get(local_id="B-1").person
    # B's resident, now a person A does not know, needs a reason; nothing of theirs was read by A.
    assert doctor.get(f"/viewer/patient/{separated.uuid}/").status_code == 302
    assert not AccessEvent.objects.filter(person=separated, actor="doctor_a").exists()
