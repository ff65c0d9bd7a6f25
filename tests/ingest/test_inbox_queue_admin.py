"""The error queue in the admin, as staff use it through the Django test client: search and filters, a parked
message read beside its segments and what it produced, replay and skip (a reason asked for on an intermediate
page), the monitor page — in Chinese — and a staff member who may only read sees all of it but cannot act."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from healthplatform.audit.models import AccessEvent
from healthplatform.ingest.models import InboxAction, InboxMessage
from healthplatform.ingest.processing import inbox_process
from mpi.models import Identity
from tests.fhirapi.client import register_feed
from tests.ingest.test_inbox_operations import parked_adt
from tests.ingest.test_processing import oru, received

CHANGELIST = "/admin/ingest/inboxmessage/"
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


@pytest.fixture
def feed(db):
    return register_feed(name="HIS-A", facility="HOSP-A")


@pytest.fixture
def parked(feed):
    return parked_adt(feed)


def _fix(feed):
    feed.source.fhir_scopes = ""
    feed.source.save(update_fields=["fhir_scopes"])


@pytest.fixture
def reader(client, django_user_model):
    """A staff member who may read the inbox (view permission) and nothing more."""
    user = django_user_model.objects.create_user("reader", password="a-long-test-password", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_inboxmessage"))
    client.force_login(user)
    return client


def test_staff_find_a_parked_message_by_mrn_status_and_type(admin_client, parked, feed):
    received(feed.source, oru("R-1"))  # another patient? the same one: the MRN finds both
    listing = admin_client.get(CHANGELIST, {"q": "M-7", "status__exact": "parked", "type": "ADT^A01"}, **ZH)
    body = listing.content.decode()
    assert listing.status_code == 200
    assert [row.pk for row in listing.context["cl"].result_list] == [parked.pk]
    assert "数据源监控" in body and "重放所选消息" in body and "出错搁置" in body
    assert [r.pk for r in admin_client.get(CHANGELIST, {"q": "M-7^HOSP-A"}).context["cl"].result_list] == [
        InboxMessage.objects.order_by("-pk")[0].pk,
        parked.pk,
    ]
    assert list(admin_client.get(CHANGELIST, {"q": str(parked.uuid)}).context["cl"].result_list) == [parked]
    assert list(admin_client.get(CHANGELIST, {"q": "C-1"}).context["cl"].result_list) == [parked]


def test_a_parked_message_is_shown_as_received_beside_its_segments(admin_client, parked):
    page = admin_client.get(f"{CHANGELIST}{parked.pk}/change/", **ZH)
    body = page.content.decode()
    assert page.status_code == 200
    assert "收到的原始消息" in body and "解析后的段" in body and "由此消息写入的资源" in body
    raw = body.split('id="inbox-raw"')[1].split("</section>")[0]
    assert "MSH|^~\\&amp;|HIS-A" in raw and "\nPID|1||M-7^^^HOSP-A^MR" in raw  # escaped, a segment a line
    segments = body.split('id="inbox-segments"')[1].split("</section>")[0]
    assert "<td>PID-3</td>" in segments and "M-7^^^HOSP-A^MR" in segments
    assert 'id="inbox-replay"' in body and 'id="inbox-skip"' in body
    assert parked.error.split(";")[0][:30] in body.replace("&#x27;", "'")


def test_replay_from_the_change_page_goes_through_the_drain_and_shows_the_resources(
    admin_client, parked, feed, django_capture_on_commit_callbacks
):
    _fix(feed)
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(f"{CHANGELIST}{parked.pk}/replay/", **ZH)
    replay = InboxMessage.objects.get(replay_of=parked)
    assert answer.status_code == 302 and answer["Location"].endswith(f"/{replay.pk}/change/")
    replay.refresh_from_db()
    assert replay.status == "processed", replay.error  # the drain queued on commit took it (eager Celery)
    page = admin_client.get(answer["Location"], **ZH).content.decode()
    produced = page.split('id="inbox-produced"')[1].split("</fieldset>")[0]
    assert "Patient" in produced and "Encounter" in produced and "/admin/ehr/resource/" in produced
    original = admin_client.get(f"{CHANGELIST}{parked.pk}/change/", **ZH).content.decode()
    assert "已重放" in original and str(replay.uuid) in original and 'id="inbox-replay"' not in original
    assert InboxAction.objects.get().actor == "admin:admin"


def test_replay_selected_replays_the_replayable_and_says_which_are_not(admin_client, parked, feed):
    waiting = received(feed.source, oru("R-1"))
    answer = admin_client.post(
        CHANGELIST, {"action": "replay_selected", "_selected_action": [parked.pk, waiting.pk]}, follow=True, **ZH
    )
    assert answer.status_code == 200
    assert InboxMessage.objects.filter(replay_of=parked).count() == 1
    assert not InboxMessage.objects.filter(replay_of=waiting).exists()
    notes = [str(m) for m in answer.context["messages"]]
    assert any("1" in m and "重放" in m for m in notes) and any(str(waiting.uuid) in m for m in notes)


def test_skip_selected_asks_for_a_reason_first(admin_client, parked):
    ask = admin_client.post(CHANGELIST, {"action": "skip_selected", "_selected_action": [parked.pk]}, **ZH)
    assert ask.status_code == 200 and "跳过收件箱消息" in ask.content.decode() and "理由" in ask.content.decode()
    empty = admin_client.post(
        CHANGELIST, {"action": "skip_selected", "_selected_action": [parked.pk], "apply": "1", "reason": " "}, **ZH
    )
    assert empty.status_code == 200 and "errorlist" in empty.content.decode()
    parked.refresh_from_db()
    assert parked.status == "parked"
    done = admin_client.post(
        CHANGELIST,
        {"action": "skip_selected", "_selected_action": [parked.pk], "apply": "1", "reason": "vendor test message"},
        **ZH,
    )
    assert done.status_code == 302
    parked.refresh_from_db()
    assert parked.status == "skipped" and InboxAction.objects.get().reason == "vendor test message"


def test_skip_from_the_change_page(admin_client, parked):
    form = admin_client.get(f"{CHANGELIST}{parked.pk}/skip/", **ZH)
    assert form.status_code == 200 and 'name="reason"' in form.content.decode()
    done = admin_client.post(f"{CHANGELIST}{parked.pk}/skip/", {"apply": "1", "reason": "duplicate feed"})
    assert done.status_code == 302
    parked.refresh_from_db()
    assert parked.status == "skipped"


def test_staff_who_may_only_read_see_the_queue_and_monitor_but_cannot_replay_or_skip(reader, parked):
    listing = reader.get(CHANGELIST, **ZH)
    assert listing.status_code == 200 and "replay_selected" not in listing.content.decode()
    page = reader.get(f"{CHANGELIST}{parked.pk}/change/", **ZH).content.decode()
    assert "解析后的段" in page and 'id="inbox-replay"' not in page and 'id="inbox-skip"' not in page
    assert reader.get(f"{CHANGELIST}monitor/", **ZH).status_code == 200
    assert reader.post(f"{CHANGELIST}{parked.pk}/replay/").status_code == 403
    assert reader.post(f"{CHANGELIST}{parked.pk}/skip/", {"apply": "1", "reason": "x"}).status_code == 403
    reader.post(CHANGELIST, {"action": "replay_selected", "_selected_action": [parked.pk]})
    reader.post(CHANGELIST, {"action": "skip_selected", "_selected_action": [parked.pk], "apply": "1", "reason": "x"})
    parked.refresh_from_db()
    assert parked.status == "parked" and InboxMessage.objects.count() == 1 and not InboxAction.objects.exists()


def test_an_operator_with_the_replay_permission_replays(client, django_user_model, parked):
    user = django_user_model.objects.create_user("operator", password="a-long-test-password", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_inboxmessage", "replay_inboxmessage"]))
    client.force_login(user)
    assert client.post(f"{CHANGELIST}{parked.pk}/replay/").status_code == 302
    assert client.post(f"{CHANGELIST}{parked.pk}/skip/", {"apply": "1", "reason": "x"}).status_code == 403
    assert InboxMessage.objects.filter(replay_of=parked).exists()


def test_the_monitor_page_shows_the_counts_in_chinese(admin_client, parked, feed):
    received(feed.source, oru("R-1"))
    page = admin_client.get(f"{CHANGELIST}monitor/", {"window": "all"}, **ZH)
    body = page.content.decode()
    assert page.status_code == 200
    assert "数据源监控" in body and "按发送方" in body and "未映射" in body and "最早的待处理消息" in body
    assert page.context["monitor"].waiting == 1 and page.context["monitor"].parked == 1
    sender = body.split('data-sender="HIS-A"')[1].split("</tr>")[0]
    assert sender.count('<td class="n">1</td>') == 2  # one received, one parked


def test_the_changelist_is_a_bounded_number_of_queries(admin_client, feed, django_assert_max_num_queries):
    for n in range(30):
        received(feed.source, oru(f"R-{n}"))
    # Session, user, the sender filter, the page's count, the alert policy check, the rows, the audit's two
    # (whose patients), the date hierarchy's two: whatever the number of rows.
    with django_assert_max_num_queries(10):
        page = admin_client.get(CHANGELIST)
    assert page.status_code == 200 and len(page.context["cl"].result_list) == 30


def test_reading_a_message_in_the_admin_is_an_audited_read_of_its_patient(admin_client, feed):
    row = received(feed.source, oru("R-1"))
    inbox_process()
    person = Identity.objects.get(assigning_authority="HOSP-A", local_id="M-7").person_id
    admin_client.get(f"{CHANGELIST}{row.pk}/change/")
    event = AccessEvent.objects.get(what="admin inbox-message")
    assert event.person_id == person and event.door == "admin"
