"""Where a fact came from: the submission (a FHIR request or an HL7 v2 message) that carried it."""

from __future__ import annotations

from ehr.models import Submission
from healthplatform.ingest.models import InboxMessage


def submission_of(submission_id: int | None) -> dict | None:
    """The submission's kind, when it was received, its request line, who sent it — never its body, which
    may carry other residents' data (one query; None when the fact has no recorded submission)."""
    if submission_id is None:
        return None
    row = (
        Submission.objects.filter(pk=submission_id)
        .values("uuid", "kind", "received_at", "request_line", "actor", "source_id")
        .first()
    )
    if row is not None and row["kind"] == Submission.Kind.HL7V2:
        # The inbox row holds the message as it arrived (its bytes): the operator finds it by this uuid.
        row["message"] = (
            InboxMessage.objects.filter(submission_id=submission_id)
            .values("uuid", "message_type", "control_id", "received_at")
            .order_by("-pk")
            .first()
        )
    if row is not None:
        row["kind_label"] = Submission.Kind(row["kind"]).label if row["kind"] in Submission.Kind.values else row["kind"]
    return row
