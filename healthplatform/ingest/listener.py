"""The HL7 v2 MLLP listener (``manage.py runmllp``): many sender connections on one asyncio loop, each message
committed to the durable inbox before its acknowledgement is written (``healthplatform.ingest.inbox``).

Per connection (docs/hl7v2-intake-research.md §1.2): bytes outside a frame are dropped and logged by length
and digest; a frame that never ends is dropped (it was never acknowledged: the sender resends it); a frame over
the size limit is answered AR / CR when its head holds an MSH, else the connection is closed; an idle
connection is closed after ``idle_timeout`` seconds, one whose frame has not ended ``frame_timeout`` seconds
after it began (however its bytes trickle in). One
connection's faults never touch the others. Frames of one connection are answered in order.

Per message (``healthplatform.ingest.intake``, the rules every door shares): what is refused before the commit
is answered AR (CR in enhanced mode) with an ERR for each fault and stored as rejected; everything else is
stored as received and answered AA (original mode) or CA (enhanced mode, when MSH-15 asks for it) — the row
committed first. If the commit fails, no ACK is sent and the connection is closed, so the sender resends.
Enhanced mode's application acknowledgement (MSH-16) is the processing's, not the listener's.

The listener also starts the processing (``drain``): after a commit batch that stored new messages it wakes one
background thread, which publishes one ``healthplatform.ingest.inbox_drain`` task (with a broker) or drains the
inbox itself (Celery eager mode: the laptop set-up). Wake-ups that come while the thread is busy are coalesced
into one more round, so a burst of batches costs one publish per round, not one per message. Neither the event
loop nor the committer thread ever publishes or drains: a broker that is down or slow delays no ACK; the failure
is logged, the messages stay received, and the next publish (or ``manage.py inbox_process --follow``) takes
them.

No log line holds a message's content: senders, types, control ids, lengths and fault codes only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings

from healthplatform.ingest.hl7v2 import faults as codes
from healthplatform.ingest.hl7v2.ack import ack_build, ack_plan
from healthplatform.ingest.hl7v2.faults import Fault
from healthplatform.ingest.hl7v2.message import message_parse
from healthplatform.ingest.hl7v2.mllp import Frame, MLLPDecoder, OversizeFrame, StrayBytes, frame_encode
from healthplatform.ingest.inbox import GroupCommit, Stored
from healthplatform.ingest.intake import acknowledgement, arrival_of, intake_read, sender_refused, storable
from healthplatform.ingest.models import InboxMessage

log = logging.getLogger("healthplatform.ingest.mllp")

SENDERS_SECONDS = 30.0
READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class _Sender:
    source_id: int
    charset: str  # the sender's character set for an empty MSH-18 ("": the region's)


@dataclass
class _Senders:
    """MSH-3 / MSH-4 → the active registered source system (None: none), remembered for ``SENDERS_SECONDS``: a
    sender disabled in the registry is refused within that time. Looked up in a worker thread (the ORM is
    synchronous), never on the event loop."""

    pool: concurrent.futures.ThreadPoolExecutor
    known: dict[tuple[str, str], tuple[float, _Sender | None]] = field(default_factory=dict)

    @staticmethod
    def _lookup(application: str, facility: str) -> _Sender | None:
        from django.db import connection

        from registry.selectors import source_system_for_hl7_sender

        # A look-up every SENDERS_SECONDS per sender: a connection each time is cheaper than one held idle per
        # thread, which a database restart would leave broken.
        try:
            source = source_system_for_hl7_sender(sending_application=application, sending_facility=facility)
        finally:
            connection.close()
        return _Sender(source.pk, source.hl7_charset) if source is not None else None

    async def sender(self, application: str, facility: str) -> _Sender | None:
        key = (application, facility)
        held = self.known.get(key)
        now = time.monotonic()
        if held is not None and held[0] > now:
            return held[1]
        if storable(application) != application or storable(facility) != facility:
            return None  # a NUL or bytes not decoded: no registered sender is named so, and no driver takes them
        found = await asyncio.get_running_loop().run_in_executor(self.pool, self._lookup, application, facility)
        if len(self.known) > 10_000:  # MSH-3/4 are the sender's to choose: do not let them grow the cache
            self.known.clear()
        self.known[key] = (now + SENDERS_SECONDS, found)
        return found


RETRY_SECONDS = 5  # after a failed round, the next one (whether or not a commit came)
_SQLITE_WRITER = threading.Lock()


@contextlib.contextmanager
def sqlite_one_writer():
    """On SQLite, one writing transaction at a time in this process: the committer's and the eager drain's
    transactions each read before they write, and SQLite answers a second connection's read-to-write upgrade with
    "database is locked" at once, without waiting out its busy timeout (a commit lost, its ACK not sent). The
    drain takes the lock per message, so a commit waits for one message's processing at most. Elsewhere
    (PostgreSQL) nothing."""
    from django.db import connection

    if connection.vendor != "sqlite":
        yield
        return
    with _SQLITE_WRITER:
        yield


def drain_publish(*, app=None, queue: str | None = None) -> None:
    """One round of starting the processing, as the settings say: with a broker, one ``inbox_drain`` task
    published for the workers (through ``app`` to ``queue`` when given: another Celery app than the platform's,
    as the tests' real worker uses); in Celery's eager mode (no broker: the laptop set-up), the inbox drained
    here, in the calling thread, one message at a time until nothing is waiting (``inbox_drain.delay()`` in eager
    mode would run the same processing in this thread, but without ``sqlite_one_writer`` between messages)."""
    from django.db import connection

    from healthplatform.ingest.processing import inbox_process_one
    from healthplatform.tasks import inbox_drain

    if app is not None:
        app.send_task(inbox_drain.name, queue=queue)
        return
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        inbox_drain.apply_async(queue=queue) if queue else inbox_drain.delay()
        return
    try:
        while True:
            with sqlite_one_writer():
                if inbox_process_one() is None:
                    break
    finally:
        # A connection per round rather than one held idle between rounds, which a database restart would
        # leave broken (the committer does the same after a failure).
        connection.close()


class DrainTrigger:
    """The one thread that starts the processing for a listener process: ``wake()`` from any thread (cheap: it
    sets an event); the thread runs ``publish`` once per wake-up, and wake-ups arriving while ``publish`` runs are
    coalesced into a single further run. ``publish`` failing is logged by class only (a broker's error can name
    its URL's password) and retried at the next wake-up."""

    def __init__(self, publish: Callable[[], object] = drain_publish) -> None:
        self.publish = publish
        self.runs = 0  # for tests and the monitor: how many times publish was called
        self.failures = 0
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-drain-trigger", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wanted.set()

    def close(self, timeout: float = 10.0) -> None:
        """Stops the thread (a round under way finishes first, within ``timeout``)."""
        self._stopping.set()
        self._wanted.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            if self._stopping.is_set():
                return
            # Cleared before the round: a commit during the round wakes the thread again, so that the messages it
            # stored are not left for a drain that had already looked.
            self._wanted.clear()
            self.runs += 1
            try:
                self.publish()
            except Exception as error:
                self.failures += 1
                log.error(
                    "the inbox drain could not be started (%s): the messages stay received; retried in %ds and "
                    "at the next commit (or run manage.py inbox_process)",
                    type(error).__name__,
                    RETRY_SECONDS,
                )
                # Not only at the next commit: the last messages of a burst would wait for traffic that may not
                # come (a broker back up, SQLite's lock free again).
                if not self._stopping.wait(RETRY_SECONDS):
                    self._wanted.set()


class _DrainingInbox(GroupCommit):
    """The group committer that wakes the drain after each commit that stored a new, received message (not a
    resend, not a rejected one) — in the committer thread, after every ACK's future of the batch is resolved."""

    def __init__(self, trigger: DrainTrigger, **kwargs) -> None:
        self._trigger = trigger
        super().__init__(**kwargs)

    def _commit(self, batch) -> None:
        with sqlite_one_writer():
            super()._commit(batch)
        for arrival, future in batch:
            if future.exception() is not None:
                return  # the batch was not stored: nothing new to process
            stored: Stored = future.result()
            if not stored.resend and arrival.status == InboxMessage.Status.RECEIVED:
                self._trigger.wake()
                return


class Listener:
    """The MLLP server of one process: ``serve()`` until cancelled. ``port`` 0 takes a free port (``port``
    after ``started`` is set says which)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 2575,
        ssl_context: ssl.SSLContext | None = None,
        max_message_bytes: int | None = None,
        idle_timeout: float = 600.0,
        frame_timeout: float = 60.0,
        default_charset: str | None = None,
        drain: bool | Callable[[], object] = False,
    ) -> None:
        """``drain``: start the processing after commits (True: ``drain_publish``, as the settings say; a
        callable: that, called in the trigger's thread; False: leave the inbox to others)."""
        # MSH-18 empty: the sender's own charset when the registry has one (read in _message), else this.
        self.default_charset = default_charset or settings.HL7_DEFAULT_CHARSET
        self.host, self.port, self.ssl_context = host, port, ssl_context
        self.max_message_bytes = max_message_bytes or settings.HL7_MAX_MESSAGE_BYTES
        self.idle_timeout, self.frame_timeout = idle_timeout, frame_timeout
        self.started = asyncio.Event()
        self.connections = 0
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="mllp-senders")
        self._senders = _Senders(self._pool)
        self.inbox: GroupCommit | None = None
        self._drain_publish = None if drain is False else drain_publish if drain is True else drain
        self.drain: DrainTrigger | None = None

    async def serve(self) -> None:
        if self._drain_publish is not None:
            self.drain = DrainTrigger(self._drain_publish)
        self.inbox = GroupCommit() if self.drain is None else _DrainingInbox(self.drain)
        # reuse_port: several listener processes may serve one port (the kernel spreads the connections), so
        # that one host's intake is not bound to one interpreter's lock.
        server = await asyncio.start_server(
            self._connection, self.host, self.port, ssl=self.ssl_context, reuse_port=self.port != 0
        )
        self.port = server.sockets[0].getsockname()[1]
        log.info("MLLP listener on %s:%s%s", self.host, self.port, " (TLS)" if self.ssl_context else "")
        self.started.set()
        if self.drain is not None:
            self.drain.wake()  # what a previous process left received (stopped, killed) is processed too
        try:
            async with server:
                await server.serve_forever()
        finally:
            # What was handed to the committer is committed (and acknowledged, if its connection still
            # stands) before the process ends.
            await asyncio.get_running_loop().run_in_executor(None, self.inbox.close)
            if self.drain is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.drain.close)
            self._pool.shutdown(wait=False)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "")
        self.connections += 1
        decoder = MLLPDecoder(max_frame_bytes=self.max_message_bytes)
        loop = asyncio.get_running_loop()
        frame_deadline: float | None = None  # when the frame being read must have ended
        try:
            while True:
                if not decoder.in_frame:
                    frame_deadline = None
                elif frame_deadline is None:
                    # From the read that left the frame open, not renewed by each read: a sender trickling a
                    # byte now and then must not hold the connection and the frame's buffer for ever.
                    frame_deadline = loop.time() + self.frame_timeout
                try:
                    # asyncio.timeout_at, not wait_for: no task wrapped around every read of every connection.
                    async with asyncio.timeout_at(frame_deadline or loop.time() + self.idle_timeout):
                        data = await reader.read(READ_BYTES)
                except TimeoutError:
                    log.info("MLLP %s closed: %s", address, "a frame stalled" if decoder.in_frame else "idle")
                    return
                events = decoder.feed(data) if data else decoder.eof()
                if events:
                    frame_deadline = None  # a frame ended (or was dropped): the next one has its own time
                for event in events:
                    if not await self._event(event, writer, address):
                        return
                if not data:
                    return
        except (ConnectionError, ssl.SSLError) as error:
            log.info("MLLP %s lost: %s", address, type(error).__name__)
        finally:
            self.connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def _event(self, event, writer: asyncio.StreamWriter, address: str) -> bool:
        """Answers one framing event; False when the connection is to be closed."""
        if isinstance(event, Frame):
            answer = await self._message(event.payload, address)
            if answer is None:
                return False
            if answer:
                writer.write(frame_encode(answer))
                await writer.drain()
            return True
        if isinstance(event, StrayBytes):
            log.warning("MLLP %s: %d bytes outside a frame dropped (digest %s)", address, event.length, event.digest)
            return True
        if isinstance(event, OversizeFrame):
            message = message_parse(event.head, sender_default_charset=self.default_charset)
            log.warning(
                "MLLP %s: a message of %d bytes refused (limit %d)", address, event.length, self.max_message_bytes
            )
            if not message.has_msh or not message.header().control_id:
                return False
            fault = Fault(
                codes.APPLICATION_INTERNAL_ERROR,
                f"the message is {event.length} bytes, more than this platform takes ({self.max_message_bytes})",
            )
            plan = ack_plan(message.header())
            writer.write(frame_encode(ack_build(message, code=plan.code("reject"), faults=[fault]).payload))
            await writer.drain()
            return True
        # UnterminatedFrame: never acknowledged, so the sender resends it.
        log.warning("MLLP %s: a frame of %d bytes without its end block dropped", address, event.length)
        return True

    async def _message(self, payload: bytes, address: str) -> bytes | None:
        """Stores one message and returns its ACK's bytes (b"" when none is due), or None when it could not be
        stored (no ACK: the connection is closed and the sender resends)."""
        intake = intake_read(payload, default_charset=self.default_charset)
        if not intake.message.has_msh:
            log.warning("MLLP %s: a frame of %d bytes without an MSH segment, not answered", address, len(payload))
            return b""
        # MSH-3 / MSH-4 are read whatever the character set (they are ASCII in practice, and the tokenizer keeps
        # the MSH of a message it could not decode); a sender's own default character set is known only then.
        sender = await self._senders.sender(*intake.sender)
        if sender is not None and sender.charset and intake.message.charset_source != "MSH-18":
            intake = intake_read(payload, default_charset=sender.charset)
        source_id = None
        if not intake.rejected:
            if sender is None:
                sender_refused(intake, "MSH-3 / MSH-4 name no active source system registered with this platform")
            else:
                source_id = sender.source_id
        arrival = arrival_of(intake, door=InboxMessage.Door.MLLP, peer=address, source_id=source_id)
        control_id = arrival.control_id[:40]
        try:
            stored = await self.inbox.store(arrival)
        except Exception as error:  # the database refused or is away: no ACK, the sender will resend
            log.error(
                "MLLP %s: %s %s not stored (%s): no ACK",
                address,
                arrival.message_type,
                control_id,
                type(error).__name__,
            )
            return None
        log.info(
            "MLLP %s: %s %s from %s stored as inbox %d%s: %s",
            address,
            arrival.message_type,
            control_id,
            arrival.sending_facility[:40],
            stored.inbox_id,
            " (resend)" if stored.resend else " (control id reused)" if stored.control_id_reused else "",
            arrival.ack_code,
        )
        return acknowledgement(intake)


def listener_run(listener: Listener) -> None:
    """Runs ``listener`` until interrupted (the management command's body)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(listener.serve())
