"""A worker killed in the middle of a message (issue 17): a real Celery worker process, through a real broker, on
PostgreSQL, is stopped by SIGKILL while it is inside the claim's transaction; the message stays received, the
next worker applies it, and its facts exist once. And: a message processed twice writes its facts once; two
worker processes draining many patients keep each patient's messages in the order received.

How the worker is made to be mid-message, deterministically and without a hook in the code: the test holds
the search index's token table in SHARE mode from a connection of its own (reads go on, writes wait). The
worker claims the message, writes its provenance row, registers the Patient, writes the Observations' rows, and
waits for that lock when it inserts their search tokens — inside the one transaction that holds the claim. The
test sees that in ``pg_stat_activity`` (the worker's backend waiting on a lock the test's backend holds, its
transaction open with an xid) before it kills the worker. (The MPI identity's row lock served until a patient
sent again unchanged stopped taking it: mpi/services/registration.py ``_unchanged``.)
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from django.db import connection

from ehr.models import Resource, ResourceVersion, Submission
from healthplatform.ingest.models import InboxMessage
from healthplatform.ingest.processing import inbox_process
from mpi.models import Identity, Person
from tests.celery_worker import celery_worker_process, test_database_url
from tests.fhirapi.client import register_feed
from tests.ingest.test_processing import MSH, RESIDENT, adt, oru, received

DRAIN = "healthplatform.ingest.inbox_drain"
BROKERS = [pytest.param("redis"), pytest.param("rabbitmq")]


def _postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks, SKIP LOCKED and worker processes on one database need PostgreSQL")


def _other_connection() -> psycopg.Connection:
    """A connection of the test's own, beside Django's (the lock holder, and the observer of the worker)."""
    return psycopg.connect(test_database_url(), autocommit=True)


def _until(what, timeout: float, worker=None, every: float = 0.1):
    """Polls ``what`` until it answers something true; fails with the worker's words after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = what()
        if answer:
            return answer
        if worker is not None and worker.process.poll() is not None:
            break
        time.sleep(every)
    said = worker.process.stdout.read() if worker is not None and worker.process.poll() is not None else ""
    pytest.fail(f"timed out waiting ({getattr(what, '__name__', what)}); the worker said: {said[-2000:]}")


def _waiting_backend(observer: psycopg.Connection, holder_pid: int):
    """The backend blocked by ``holder_pid`` (the worker's), as pg_stat_activity sees it, or None."""
    return observer.execute(
        "SELECT pid, state, wait_event_type, backend_xid IS NOT NULL, query FROM pg_stat_activity "
        "WHERE %s = ANY(pg_blocking_pids(pid))",
        [holder_pid],
    ).fetchone()


def _hold_index_writes(holder: psycopg.Connection) -> None:
    """In ``holder``'s open transaction: every insert of a search token waits until it ends."""
    holder.execute("LOCK TABLE ehr_searchtoken IN SHARE MODE")


def _backend_gone(observer: psycopg.Connection, pid: int) -> bool:
    return observer.execute("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]


def _facts_once(message: InboxMessage) -> None:
    """The ORU's facts, as written by one successful processing of it: the two Observations once each, at
    version 1, on the identity the ADT registered, from one hl7v2 submission that names this inbox row."""
    identity = Identity.objects.get(assigning_authority="HOSP-A", local_id="M-7")
    assert Identity.objects.filter(assigning_authority="HOSP-A").count() == 1
    assert Person.objects.count() == 1 and identity.person.resident_id == RESIDENT
    observations = Resource.objects.filter(resource_type="Observation")
    assert sorted(o.body["code"]["coding"][0]["code"] for o in observations) == ["2160-0", "2345-7"]
    assert {(o.version_id, o.identity_id) for o in observations} == {(1, identity.pk)}
    assert not ResourceVersion.objects.filter(resource__resource_type="Observation").exists()
    submissions = Submission.objects.filter(kind="hl7v2", request_line__contains=message.control_id)
    assert submissions.count() == 1
    assert {o.submission_id for o in observations} == {submissions.get().pk}
    assert message.submission_id == submissions.get().pk
    patient = Resource.objects.get(resource_type="Patient", identity=identity)
    assert patient.version_id == 1  # the ORU's PID is the ADT's: the Patient unchanged, however often it ran


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker", BROKERS)
def test_a_worker_killed_mid_message_leaves_it_received_and_the_next_worker_writes_its_facts_once(broker, tmp_path):
    _postgresql()
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    received(feed.source, adt("K-1"))
    assert inbox_process() == 1  # the patient is known: its identity row exists
    message = received(feed.source, oru("K-2"))
    holder, observer = _other_connection(), _other_connection()
    try:
        holder.execute("BEGIN")
        _hold_index_writes(holder)
        holder_pid = holder.info.backend_pid
        # A queue named here outlives the first worker (a queue of its own is deleted when it stops): on RabbitMQ
        # the killed task waits in it for the next worker.
        queue = f"test-kill-{uuid.uuid4().hex[:8]}"
        with celery_worker_process(broker, tmp_path, queue=queue) as worker:
            worker.client.send_task(DRAIN, queue=queue)
            pid, state, wait_type, has_xid, query = _until(
                lambda: _waiting_backend(observer, holder_pid), 90, worker=worker
            )
            # Mid-message: the worker's statement waits on our lock, inside a transaction that has written.
            assert (state, wait_type, has_xid) == ("active", "Lock", True)
            assert "ehr_searchtoken" in query
            # ... the claim's transaction: it holds the message's inbox row.
            with pytest.raises(psycopg.errors.LockNotAvailable):
                observer.execute("SELECT id FROM ingest_inboxmessage WHERE id = %s FOR UPDATE NOWAIT", [message.pk])
            worker.kill()
            # The dead worker's backend still waits on our lock (PostgreSQL learns of the lost client when it
            # next writes to it): released, it gets its row, fails to answer, and rolls everything back.
            holder.execute("COMMIT")
            _until(lambda: _backend_gone(observer, pid), 30)
        message.refresh_from_db()
        assert message.status == "received" and message.submission_id is None
        assert not Resource.objects.filter(resource_type="Observation").exists()
        assert Submission.objects.filter(kind="hl7v2").count() == 1  # the ADT's; the ORU's was rolled back

        with celery_worker_process(broker, tmp_path, queue=queue) as again:
            if broker == "redis":
                # Redis gives an unacknowledged task back only after its visibility timeout (an hour by default):
                # here the next drain is a new task. RabbitMQ gives the killed task back when its channel closes,
                # and the new worker on the same queue runs it (acks_late): no new task is sent.
                again.client.send_task(DRAIN, queue=queue)

            def processed():
                message.refresh_from_db()
                return message.status != "received"

            _until(processed, 90, worker=again)
            if broker == "rabbitmq":
                with again.client.connection_for_write() as conn:
                    conn.default_channel.queue_delete(queue)
    finally:
        holder.close()
        observer.close()
    assert message.status == "processed", message.error
    # The killed attempt was counted before it started (its own commit), the next worker's too.
    assert message.attempts == 2
    _facts_once(message)


@pytest.mark.django_db(transaction=True)
def test_an_attempt_killed_mid_message_is_counted(tmp_path):
    """The same kill as above, in-process (no broker needed: the worker is a thread's connection that is
    terminated by ``pg_terminate_backend`` while it waits on the index's lock, which is what the server sees of
    a killed worker process)."""
    import threading

    from django.db import connections

    _postgresql()
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    received(feed.source, adt("K-1"))
    inbox_process()
    message = received(feed.source, oru("K-2"))
    holder, observer = _other_connection(), _other_connection()
    try:
        holder.execute("BEGIN")
        _hold_index_writes(holder)

        def worker():
            try:
                inbox_process(limit=1)
            except Exception:  # noqa: S110 - the terminated connection's error is the point
                pass
            finally:
                connections.close_all()

        thread = threading.Thread(target=worker)
        thread.start()
        pid = _until(lambda: _waiting_backend(observer, holder.info.backend_pid), 30)[0]
        observer.execute("SELECT pg_terminate_backend(%s)", [pid])
        thread.join(30)
        holder.execute("COMMIT")
    finally:
        holder.close()
        observer.close()
    message.refresh_from_db()
    assert message.status == "received"
    assert message.attempts == 1  # the killed attempt, counted before the next worker takes it


@pytest.mark.django_db(transaction=True)
def test_the_same_message_processed_twice_writes_its_facts_once():
    """Twice by two routes: the row set back to received (a worker lost after its commit, before its task was
    acknowledged, runs it again), and a second row with identical content (a replay from the admin)."""
    _postgresql()
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    received(feed.source, adt("K-1"))
    message = received(feed.source, oru("K-2"))
    assert inbox_process() == 2
    message.refresh_from_db()
    first_submission = message.submission_id

    InboxMessage.objects.filter(pk=message.pk).update(status="received")
    assert inbox_process() == 1
    message.refresh_from_db()
    assert message.status == "processed" and message.attempts == 2
    replay = InboxMessage.objects.create(
        **{
            f.attname: getattr(message, f.attname)
            for f in InboxMessage._meta.concrete_fields
            if f.attname not in ("id", "uuid", "status", "attempts", "processed_at", "submission_id", "replay_of_id")
        },
        replay_of=message,
    )
    assert inbox_process() == 1
    replay.refresh_from_db()
    assert replay.status == "processed", replay.error

    identity = Identity.objects.get(assigning_authority="HOSP-A", local_id="M-7")
    assert Person.objects.count() == 1 and Identity.objects.count() == 1
    observations = Resource.objects.filter(resource_type="Observation")
    assert observations.count() == 2
    assert {(o.version_id, o.identity_id, o.submission_id) for o in observations} == {
        (1, identity.pk, first_submission)
    }
    assert not ResourceVersion.objects.exists()
    assert Resource.objects.get(resource_type="Patient").version_id == 1


def _pid(p: int, name: str) -> str:
    return f"PID|1||P-{p}^^^HOSP-A^MR||患者{p}^{name}||19750505|F\r"


def _admit(p: int) -> str:
    return (
        MSH.format(type="ADT^A01^ADT_A01", control=f"A-{p}")
        + "EVN|A01|20261203101500\r"
        + _pid(p, "入院")
        + f"PV1|1|I|W3^12^1||||||||||||||||V-{p}|||||||||||||||||||||||||20261203100000+0800\r"
    )


def _result(p: int) -> str:
    return (
        MSH.format(type="ORU^R01^ORU_R01", control=f"R-{p}")
        + _pid(p, "入院")
        + f"OBR|1|P-{p}|F-{p}|24323-8^综合代谢^LN|||20261203070000+0800\r"
        + "OBX|1|NM|2345-7^葡萄糖^LN||6.4|mmol/L|3.9-6.1|H|||F|||20261203075500+0800\r"
        + "OBX|2|NM|2160-0^肌酐^LN||80|umol/L|57-111|N|||F|||20261203075500+0800\r"
    )


def _name_update(p: int, n: int) -> str:
    return MSH.format(type="ADT^A08^ADT_A01", control=f"U-{p}-{n}") + "EVN|A08|20261203101500\r" + _pid(p, f"第{n}次")


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker", BROKERS)
def test_two_worker_processes_drain_many_patients_each_in_the_order_received(broker, tmp_path):
    """Twelve patients, each an A01, an ORU and then six A08s, interleaved as a region's feeds interleave them;
    two worker processes on one queue share small drains. Every message is processed; each Patient's versions
    hold the names in the order sent, and the last A08's name stands."""
    _postgresql()
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    patients, updates = 12, 6
    for p in range(patients):
        received(feed.source, _admit(p))
    for p in range(patients):
        received(feed.source, _result(p))
    for n in range(updates):
        for p in range(patients):
            received(feed.source, _name_update(p, n))
    total = InboxMessage.objects.count()
    assert total == patients * (2 + updates)

    with (
        celery_worker_process(broker, tmp_path) as first,
        celery_worker_process(broker, tmp_path, queue=first.queue) as second,
    ):
        results = [first.client.send_task(DRAIN, args=(4,), queue=first.queue) for _ in range(total // 4 + 4)]
        try:
            counts = [r.get(timeout=180) for r in results]
        except Exception as error:  # the workers' own words explain it better than the timeout
            first.process.terminate()
            second.process.terminate()
            pytest.fail(f"{error!r}; workers said: {first.process.communicate()[0][-1500:]}")
        assert second.process.poll() is None, second.process.communicate()[0][-3000:]
    assert sum(counts) == total
    assert set(InboxMessage.objects.values_list("status", flat=True)) == {"processed"}
    for p in range(patients):
        patient = Resource.objects.get(resource_type="Patient", identity__local_id=f"P-{p}")
        assert patient.body["name"][0]["text"] == f"患者{p}第{updates - 1}次"
        history = [v.body["name"][0]["text"] for v in patient.versions.order_by("version_id")]
        sent = [f"患者{p}入院", *(f"患者{p}第{n}次" for n in range(updates))]
        assert [*history, patient.body["name"][0]["text"]] == sent
        assert patient.version_id == updates + 1
        assert Resource.objects.filter(resource_type="Observation", identity=patient.identity).count() == 2
        assert Resource.objects.filter(resource_type="Encounter", identity=patient.identity).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_lock_timeout_or_deadlock_gives_the_batch_up_and_parks_nothing():
    """A database refusal that is no fault of the message (here a lock timeout on the search index,
    as a deadlock between two workers' batches would be): the batch is given up and taken again; the message
    stays received and is processed once the lock is gone, never parked."""
    from django.db import OperationalError

    _postgresql()
    feed = register_feed(name="HIS-A", facility="HOSP-A")
    received(feed.source, adt("K-1"))
    inbox_process()
    message = received(feed.source, oru("K-2"))
    holder = _other_connection()
    try:
        holder.execute("BEGIN")
        _hold_index_writes(holder)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        with pytest.raises(OperationalError):
            inbox_process()
        message.refresh_from_db()
        assert message.status == "received" and message.error == "" and message.attempts == 3
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert inbox_process() == 1
    message.refresh_from_db()
    assert message.status == "processed"
