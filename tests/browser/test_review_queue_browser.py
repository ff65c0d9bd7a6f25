"""The MPI review queue in a real browser: find a possible match, compare side by side, decide."""

from __future__ import annotations

import datetime as dt

from mpi.demographics import Demographics
from mpi.identifiers import make_resident_id
from mpi.models import DoNotLink, Identity, ReviewItem
from mpi.services import identity_register

RID = make_resident_id("440106", dt.date(1980, 5, 3), 123)


def _possible_match():
    """Two registrations sharing a trusted number but with different names: a review item, not a link."""
    first = identity_register(
        assigning_authority="H1",
        local_id="A1",
        demographics=Demographics(name="王小明", sex="male", birth_date="1980-05-03", resident_id=RID),
    )
    second = identity_register(
        assigning_authority="H2",
        local_id="B1",
        demographics=Demographics(name="李建国", sex="male", birth_date="1980-05-03", resident_id=RID),
    )
    assert second.decision == "review"
    return first, second, ReviewItem.objects.get(identity=second.identity)


def test_reviewer_compares_side_by_side_and_links(admin_page, live_server):
    first, second, item = _possible_match()
    page = admin_page
    page.goto(f"{live_server.url}/admin/mpi/reviewitem/")
    # The queue opens on open items, with the score as the way in.
    page.locator("a.review-link").first.click()
    table = page.locator("#review-comparison")
    assert "王小明" in table.inner_text() and "李建国" in table.inner_text()
    assert page.locator("tr.field-resident_id td.level").get_attribute("data-level") == "exact"
    assert page.locator("tr.field-name td.level").get_attribute("data-level") == "disagree"
    assert float(page.locator("tr.field-name td.weight").inner_text()) < 0
    page.fill("textarea[name=reason]", "户籍系统核实：同一人，已改名")
    page.locator("button[value=accept]").click()
    page.wait_for_url("**/admin/mpi/reviewitem/")
    assert page.locator(".messagelist .success").count() == 1
    identity = Identity.objects.get(pk=second.identity.pk)
    assert identity.person_id == first.person.pk and identity.link_kind == "manual"
    assert ReviewItem.objects.get(pk=item.pk).status == "accepted"


def test_reviewer_rejects_with_a_reason_and_it_becomes_do_not_link(admin_page, live_server):
    _, _, item = _possible_match()
    page = admin_page
    page.goto(f"{live_server.url}/admin/mpi/reviewitem/{item.pk}/review/")
    # Without a reason the form refuses to send the decision, and nothing changes.
    page.locator("button[value=reject]").click()
    assert page.locator("textarea[name=reason]:invalid").count() == 1
    assert ReviewItem.objects.get(pk=item.pk).status == "open"
    page.fill("textarea[name=reason]", "不同的人：号码被错用")
    page.locator("button[value=reject]").click()
    page.wait_for_url("**/admin/mpi/reviewitem/")
    assert ReviewItem.objects.get(pk=item.pk).status == "rejected"
    assert DoNotLink.objects.count() == 1
    # The queue no longer lists it; the "all" filter still does.
    assert page.locator("a.review-link").count() == 0
    page.goto(f"{live_server.url}/admin/mpi/reviewitem/?status=all")
    assert page.locator("a.review-link").count() == 1
