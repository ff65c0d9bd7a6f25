"""The HL7 v2 intake's durable inbox: every message as it arrived, committed before it was acknowledged."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from mpi.models import uuid7


class InboxMessage(models.Model):
    """One HL7 v2 message as a sender delivered it (over MLLP or HTTP), with what its MSH said and where
    processing stands. The row is committed before the message's acknowledgement is written: an AA or CA the
    sender holds means this row exists."""

    class Status(models.TextChoices):
        RECEIVED = "received", _("received, waiting to be processed")
        PROCESSED = "processed", _("processed")
        PARKED = "parked", _("parked with an error")
        REJECTED = "rejected", _("rejected at intake")
        SKIPPED = "skipped", _("skipped by an operator")
        # A parked message an operator replayed: the question it asked is answered by its replay (a new row
        # naming it), so it leaves the error queue and may be pruned once its replays are.
        REPLAYED = "replayed", _("replayed (see its replay)")

    class Door(models.TextChoices):
        MLLP = "mllp", _("MLLP")
        HTTP = "http", _("HTTP")

    uuid = models.UUIDField(default=uuid7, unique=True, editable=False)
    door = models.CharField(_("door"), max_length=4, choices=Door.choices)
    # The registered feed MSH-3/MSH-4 name; null when they name none (the message was rejected, AR).
    source = models.ForeignKey(
        "registry.SourceSystem",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("source system"),
    )
    peer = models.CharField(_("sender address"), max_length=64, blank=True)
    # MSH as sent (HD's first component for MSH-3/4, the whole of MSH-9), for the operator's search.
    sending_application = models.CharField(_("MSH-3 sending application"), max_length=180, blank=True)
    sending_facility = models.CharField(_("MSH-4 sending facility"), max_length=180, blank=True)
    control_id = models.CharField(_("MSH-10 message control id"), max_length=199, blank=True)
    message_type = models.CharField(_("MSH-9 message type"), max_length=40, blank=True)
    version = models.CharField(_("MSH-12 version"), max_length=20, blank=True)
    charset = models.CharField(_("character set"), max_length=20, blank=True)
    raw = models.BinaryField(_("bytes as received"))
    text = models.TextField(_("decoded text"), blank=True)
    sha256 = models.CharField(max_length=64)
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.RECEIVED)
    ack_code = models.CharField(_("MSA-1 acknowledgement code"), max_length=2, blank=True)
    # What was wrong, as an operator reads it: table 0357 codes, locations and the platform's words — never
    # field values (they may be a patient's).
    error = models.TextField(_("error"), blank=True)
    # Resends of this message (same sender, MSH-10 and bytes) acknowledged again and not stored again.
    resends = models.PositiveIntegerField(_("resends"), default=0)
    # The sender used this MSH-10 before for a message with other content (flagged, stored, processed).
    control_id_reused = models.BooleanField(_("control id reused"), default=False)
    # Messages of one patient are applied in the order received (issue 17): the sender and the first PID-3.
    patient_key = models.CharField(_("patient key"), max_length=250, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # The PostgreSQL backend of the worker that claimed it (processing.py): a claim of a live backend is left
    # alone, one whose backend is gone (a killed worker) is taken again.
    claimed_pid = models.IntegerField(null=True, blank=True, editable=False)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    # The archive's provenance row of what processing wrote: every fact and document written from this
    # message points to it (ehr Submission, kind hl7v2), and from it back here.
    submission = models.ForeignKey(
        "ehr.Submission",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="inbox_messages",
        verbose_name=_("submission"),
    )
    # What processing wrote, as the corridor answered it: [{"type", "id", "version", "outcome", "pk"}] (the
    # archive's row pk; none for a document) — the error queue's "resources produced" without searching the
    # archive by submission (a column with no index of its own). Null until processed.
    produced = models.JSONField(_("resources produced"), null=True, blank=True)
    # A deliberate replay from the admin is a new row naming the one it replays, not a duplicate of it.
    replay_of = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="replays", verbose_name=_("replay of")
    )

    class Meta:
        verbose_name = _("inbox message")
        verbose_name_plural = _("inbox messages")
        # Operators who may act on the error queue; view permission alone reads it.
        permissions = [
            ("replay_inboxmessage", _("Can replay inbox messages")),
            ("skip_inboxmessage", _("Can skip inbox messages")),
        ]
        constraints = [
            # The same message resent (a lost ACK) is stored once, whatever the races between listeners.
            models.UniqueConstraint(
                fields=["source", "control_id", "sha256"],
                condition=Q(source__isnull=False, replay_of__isnull=True) & ~Q(control_id=""),
                name="ingest_inbox_once",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "id"], name="ingest_inbox_status"),
            models.Index(fields=["source", "control_id"], name="ingest_inbox_control_id"),
            models.Index(fields=["received_at"], name="ingest_inbox_received"),
            models.Index(fields=["patient_key", "id"], name="ingest_inbox_patient"),
            # The claim reads only what waits: without these it walked every processed row by id (16 ms a
            # claim after 7,400 processed, bench/hl7v2_process.py), however fresh the statistics.
            models.Index(fields=["id"], condition=Q(status="received"), name="ingest_inbox_waiting"),
            models.Index(
                fields=["patient_key", "id"], condition=Q(status="received"), name="ingest_inbox_patient_waiting"
            ),
            # A claim takes one source's oldest (processing writes them together).
            models.Index(fields=["source", "id"], condition=Q(status="received"), name="ingest_inbox_source_waiting"),
        ]

    def __str__(self) -> str:
        return f"{self.message_type or '?'} {self.control_id or '?'} ({self.get_status_display()})"

    def is_replayable(self) -> bool:
        """Whether an operator may send this row through processing again: not while it waits (it will be
        processed anyway), nor a message refused at intake (its sender was told AR) or one already replayed."""
        return self.status in (self.Status.PARKED, self.Status.PROCESSED, self.Status.SKIPPED)

    def is_skippable(self) -> bool:
        """Whether an operator may decide this row is never to be processed: only while it waits or is parked."""
        return self.status in (self.Status.RECEIVED, self.Status.PARKED)


class InboxAction(models.Model):
    """One operator action on the inbox (a replay or a skip): who, when, which row, and the reason given.
    Keyed by the row's uuid, not a foreign key, so the record outlives the row's pruning; it holds no patient
    data (the reason is the operator's own words, asked for without it)."""

    class Action(models.TextChoices):
        REPLAY = "replay", _("replay")
        SKIP = "skip", _("skip")

    at = models.DateTimeField(_("when"), default=timezone.now)
    actor = models.CharField(_("operator"), max_length=150)
    action = models.CharField(_("action"), max_length=8, choices=Action.choices)
    message_uuid = models.UUIDField(_("inbox message"), db_index=True)
    # The new row a replay made (its uuid), for following the chain after either row is pruned.
    replay_uuid = models.UUIDField(_("replay"), null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        verbose_name = _("inbox operator action")
        verbose_name_plural = _("inbox operator actions")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.message_uuid}"


class ApplicationAck(models.Model):
    """The application acknowledgement (AA / AE) of one message sent in enhanced mode (MSH-16 AL, ER or SU,
    HL7 v2.5.1 ch. 2.9.3), made when its processing ends and kept for the sender to pick up over HTTP
    (``GET /hl7v2/acks``): the platform does not open connections into a hospital's network."""

    message = models.ForeignKey(
        InboxMessage, on_delete=models.CASCADE, related_name="application_acks", verbose_name=_("inbox message")
    )
    source = models.ForeignKey(
        "registry.SourceSystem", on_delete=models.CASCADE, related_name="+", verbose_name=_("source system")
    )
    code = models.CharField(_("MSA-1 acknowledgement code"), max_length=2)
    text = models.TextField(_("acknowledgement"))
    created_at = models.DateTimeField(_("made"), default=timezone.now)
    # When the sender first fetched it (the monitor shows acknowledgements nobody picks up).
    taken_at = models.DateTimeField(_("picked up"), null=True, blank=True)

    class Meta:
        verbose_name = _("application acknowledgement")
        verbose_name_plural = _("application acknowledgements")
        indexes = [models.Index(fields=["source", "id"], name="ingest_appack_source")]

    def __str__(self) -> str:
        return f"{self.code} {self.message_id}"
