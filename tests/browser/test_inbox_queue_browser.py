"""The HL7 v2 error queue in a real Chromium: a hospital's ADT arrives over HTTP, is parked by processing for a
real cause (its feed's scopes were narrowed in the registry before the worker took it), and the operator finds
it, reads it beside its segments, replays it once the feed is fixed, and watches the monitor."""

from __future__ import annotations

import re

import requests

from healthplatform.ingest.models import InboxMessage
from healthplatform.ingest.processing import inbox_process
from tests.fhirapi.client import basic, register_feed
from tests.ingest.test_processing import adt

CHANGELIST = "/admin/ingest/inboxmessage/"


def test_operator_replays_a_parked_adt_after_the_feed_is_fixed_and_sees_the_monitor(admin_page, live_server):
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    answer = requests.post(
        f"{live_server.url}/hl7v2",
        data=adt("B-1").encode(),
        headers={**basic(feed.source.client_id, feed.secret), "Content-Type": "x-application/hl7-v2+er7"},
        timeout=10,
    )
    assert answer.status_code == 200 and b"MSA|AA|B-1" in answer.content
    # A registry change between the acknowledgement and the worker: the feed may now write results only.
    feed.source.fhir_scopes = "system/Observation.write"
    feed.source.save(update_fields=["fhir_scopes"])
    inbox_process()
    parked = InboxMessage.objects.get(control_id="B-1")
    assert parked.status == "parked"

    page = admin_page
    page.goto(f"{live_server.url}{CHANGELIST}")
    page.locator("#changelist-filter").get_by_role("link", name="出错搁置").click()
    page.wait_for_url("**status__exact=parked*")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "B-1" in rows.first.inner_text()
    rows.first.locator("th a").click()
    page.wait_for_url(re.compile(rf"{CHANGELIST}{parked.pk}/change/"))

    # The message as received beside its parsed segments.
    raw, segments = page.locator("#inbox-raw"), page.locator("#inbox-segments")
    assert "收到的原始消息" in raw.inner_text() and "解析后的段" in segments.inner_text()
    lines = raw.locator("pre").inner_text().splitlines()
    assert lines[0].startswith("MSH|^~\\&|HIS-A") and lines[2].startswith("PID|1||M-7^^^HOSP-A^MR")
    pid3 = segments.locator("tr", has_text="PID-3")
    assert "M-7^^^HOSP-A^MR" in pid3.inner_text()
    left, right = raw.bounding_box(), segments.bounding_box()
    assert right["x"] >= left["x"] + left["width"] and abs(right["y"] - left["y"]) < 5  # side by side
    assert "无" in page.locator("#inbox-produced").inner_text()

    # The registry fixed, the operator replays: the replay is processed through the same pipeline.
    feed.source.fhir_scopes = ""
    feed.source.save(update_fields=["fhir_scopes"])
    page.locator("#inbox-replay button").click()
    replay = InboxMessage.objects.get(replay_of=parked)
    page.wait_for_url(f"**{CHANGELIST}{replay.pk}/change/")
    assert "重放" in page.locator(".messagelist .success").inner_text()
    assert page.locator(".fieldBox.field-status .readonly").inner_text() == "已处理"
    produced = page.locator("#inbox-produced").inner_text()
    assert "Patient" in produced and "Encounter" in produced

    page.get_by_role("link", name="数据源监控").first.click()
    page.wait_for_url(f"**{CHANGELIST}monitor/")
    assert page.locator("#monitor-parked").inner_text() == "0"
    assert page.locator("#monitor-waiting").inner_text() == "0"
    sender = page.locator("#monitor-senders tr[data-sender='HIS-A'] td").all_inner_texts()
    headers = page.locator("#monitor-senders thead th").all_inner_texts()[1:]
    counts = dict(zip(headers, sender, strict=False))
    assert counts["已处理"] == "1" and counts["已重放（见其重放）"] == "1"
    assert InboxMessage.objects.get(pk=parked.pk).status == "replayed"
