"""MPI admin pages: the review queue, person and identity pages, merge/unlink/unmerge actions."""

from __future__ import annotations

import datetime as dt

import pytest

from mpi.demographics import Demographics
from mpi.identifiers import make_resident_id
from mpi.models import Identity, LinkEvent, Person, ReviewItem
from mpi.services import identity_register

pytestmark = pytest.mark.django_db
RID = make_resident_id("440106", dt.date(1980, 5, 3), 123)


def reg(authority, local_id, **kw):
    return identity_register(assigning_authority=authority, local_id=local_id, demographics=Demographics(**kw))


@pytest.fixture
def review_item():
    reg("H1", "A1", name="王小明", sex="male", birth_date="1980-05-03", resident_id=RID)
    second = reg("H2", "B1", name="李建国", sex="male", birth_date="1980-05-03", resident_id=RID)
    return ReviewItem.objects.get(identity=second.identity)


def test_queue_lists_open_items_in_a_constant_number_of_queries(
    admin_client_zh, review_item, django_assert_max_num_queries
):
    for i in range(5):
        reg(f"H{i + 3}", f"C{i}", name=f"赵{i}", sex="male", birth_date="1980-05-03", resident_id=RID)
    with django_assert_max_num_queries(12):
        response = admin_client_zh.get("/admin/mpi/reviewitem/")
    assert response.status_code == 200
    assert response.content.decode().count('class="review-link"') == ReviewItem.objects.filter(status="open").count()


def test_decision_without_reason_is_refused(admin_client_zh, review_item):
    response = admin_client_zh.post(f"/admin/mpi/reviewitem/{review_item.pk}/review/", {"decision": "accept"})
    assert response.status_code == 200
    assert ReviewItem.objects.get(pk=review_item.pk).status == "open"


def test_merge_action_then_unmerge_action(admin_client_zh):
    a = reg("H1", "A1", name="王小明", sex="male", birth_date="1980-05-03")
    b = reg("H2", "B1", name="李娜", sex="female", birth_date="1990-01-01")
    response = admin_client_zh.post(
        "/admin/mpi/person/",
        {"action": "merge_selected", "_selected_action": [a.person.pk, b.person.pk], "apply": "1",
         "survivor": a.person.pk, "reason": "same resident per ADT"},
    )  # fmt: skip
    assert response.status_code == 302
    assert Person.objects.get(pk=b.person.pk).status == "merged"
    merge = LinkEvent.objects.get(kind="merge")
    assert merge.actor == "admin:root" and merge.reason == "same resident per ADT"
    response = admin_client_zh.post(
        "/admin/mpi/linkevent/",
        {"action": "unmerge_selected", "_selected_action": [merge.pk], "apply": "1", "reason": "wrong merge"},
    )
    assert response.status_code == 302
    assert Person.objects.get(pk=b.person.pk).status == "active"
    assert Identity.objects.get(pk=b.identity.pk).person_id == b.person.pk


def test_unlink_action(admin_client_zh):
    reg("H1", "A1", name="王小明", sex="male", birth_date="1980-05-03", phone="13800138000")
    b = reg("H2", "B1", name="王小明", sex="male", birth_date="1980-05-03", phone="13800138000")
    response = admin_client_zh.post(
        "/admin/mpi/identity/",
        {"action": "unlink_selected", "_selected_action": [b.identity.pk], "apply": "1", "reason": "two people"},
    )
    assert response.status_code == 302
    assert Identity.objects.get(pk=b.identity.pk).person_id != Identity.objects.get(local_id="A1").person_id


@pytest.mark.parametrize("url", ["/admin/mpi/person/", "/admin/mpi/identity/", "/admin/mpi/linkevent/"])
def test_pages_render(admin_client_zh, review_item, url):
    assert admin_client_zh.get(url).status_code == 200
    obj = {"person": Person, "identity": Identity, "linkevent": LinkEvent}[url.split("/")[3]].objects.first()
    assert admin_client_zh.get(f"{url}{obj.pk}/change/").status_code == 200


def test_admin_reads_of_resident_records_are_logged_without_patient_data(admin_client_zh, review_item, caplog):
    person = Person.objects.first()
    with caplog.at_level("INFO", logger="healthplatform.access"):
        admin_client_zh.get(f"/admin/mpi/person/{person.pk}/change/")
        admin_client_zh.get(f"/admin/mpi/reviewitem/{review_item.pk}/review/")
        admin_client_zh.get("/admin/mpi/identity/")
    lines = [r.getMessage() for r in caplog.records if r.name == "healthplatform.access"]
    assert f"admin read user=root record=person id={person.pk}" in lines
    assert f"admin read user=root record=possible-match id={review_item.pk}" in lines
    assert "admin read user=root record=identity-list id=-" in lines
    text = "\n".join(lines)
    assert RID not in text and "王小明" not in text and "李建国" not in text
