"""The HL7 v2 HTTP door, ``POST /hl7v2``: for a sender that cannot speak MLLP (issue 17). The body is one
message (ER7, as it would travel inside an MLLP frame, in its own character set); the answer's body is the
ACK the MLLP listener would have sent, from the same rules (``healthplatform.ingest.intake``) into the same
inbox. It lives with the FHIR API's views because it is the same HTTP door, with the same authentication;
the decisions are the intake corridor's.

Who sends is who authenticated, as on the FHIR API (an OAuth2 bearer token from ``/oauth/token``, or HTTP
Basic): MSH-3 / MSH-4 must name that very source system, or the message is refused (AR). A bearer token must
grant writing every type HL7 v2 messages are mapped to (``system/*.write``): the message is processed later,
as its source system. One message per request, committed before the answer (no group commit across web
workers: a sender that needs thousands a second uses MLLP). The status is 200 whenever an ACK is in the body
(an AR is an answer, not an HTTP error); 204 when none is due (an inbound ACK, MSH-15 NE); 503 with
Retry-After when the inbox cannot store the message (nothing stored, resend it).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions as drf
from rest_framework.views import APIView

from healthplatform.client_address import client_address
from healthplatform.fhirapi.authentication import (
    SourceSystemBasicAuthentication,
    SourceSystemBearerAuthentication,
    caller_of,
)
from healthplatform.fhirapi.permissions import IsAttributable
from healthplatform.ingest.inbox import inbox_store
from healthplatform.ingest.intake import acknowledgement, arrival_of, intake_read, sender_refused
from healthplatform.ingest.models import ApplicationAck, InboxMessage

log = logging.getLogger("healthplatform.ingest.http")

# What an HL7 v2 message may write once mapped (issue 17's message types).
MAPPED_TYPES = (
    "Patient",
    "Encounter",
    "Observation",
    "DiagnosticReport",
    "ServiceRequest",
    "MedicationRequest",
    "AllergyIntolerance",
    "Immunization",
    "DocumentReference",
)
ER7 = "x-application/hl7-v2+er7"


class HL7v2View(APIView):
    authentication_classes = [SourceSystemBearerAuthentication, SourceSystemBasicAuthentication]
    permission_classes = [IsAttributable]
    parser_classes = []  # the body is the message's bytes, read as they are

    @extend_schema(
        operation_id="hl7v2_submit",
        summary="Submit one HL7 v2 message (the body); the body of the answer is its ACK",
        tags=["hl7v2"],
        request={ER7: OpenApiTypes.BINARY},
        responses={(200, ER7): OpenApiTypes.BINARY, 204: None, 401: None, 403: None, 413: None, 503: None},
    )
    def post(self, request):
        caller = caller_of(request)
        if caller.source is None:
            raise drf.PermissionDenied("only a registered source system sends HL7 v2 messages")
        unwritable = [t for t in MAPPED_TYPES if not caller.may(t, "write")]
        if unwritable:
            raise drf.PermissionDenied(
                "an HL7 v2 message is written as its source system: the token must grant writing "
                + ", ".join(unwritable)
                + " (system/*.write)"
            )
        # Refused by its Content-Length before it is read; a body beyond DATA_UPLOAD_MAX_MEMORY_SIZE raised
        # RequestDataTooBig, which this view's (DRF's) exception handler leaves to Django: a 400 page.
        if _content_length(request) > settings.HL7_MAX_MESSAGE_BYTES:
            return HttpResponse(status=413)
        try:
            payload = request.body
        except RequestDataTooBig:
            return HttpResponse(status=413)
        if len(payload) > settings.HL7_MAX_MESSAGE_BYTES:
            return HttpResponse(status=413)
        source = caller.source
        intake = intake_read(payload, default_charset=source.hl7_charset or settings.HL7_DEFAULT_CHARSET)
        if not intake.rejected and intake.sender != (source.sending_application, source.sending_facility):
            sender_refused(intake, "MSH-3 / MSH-4 do not name the source system that authenticated")
        arrival = arrival_of(
            intake,
            door=InboxMessage.Door.HTTP,
            peer=(client_address(request) or "")[:64],
            source_id=source.pk if not intake.rejected else None,
        )
        try:
            stored = inbox_store([arrival])[0]
        except DatabaseError as error:
            log.error("HL7 v2 over HTTP from %s not stored (%s)", source.client_id, type(error).__name__)
            response = HttpResponse(status=503)
            response["Retry-After"] = "5"
            return response
        log.info(
            "HL7 v2 over HTTP from %s: %s %s stored as inbox %d%s: %s",
            source.client_id,
            arrival.message_type,
            arrival.control_id[:40],
            stored.inbox_id,
            " (resend)" if stored.resend else "",
            arrival.ack_code,
        )
        answer = acknowledgement(intake)
        if not answer:
            return HttpResponse(status=204)
        codec = intake.message.codec or "ascii"
        return HttpResponse(answer, status=200, content_type=f"{ER7}; charset={codec}")


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class HL7v2AcksView(APIView):
    """``GET /hl7v2/acks?after=<n>``: the application acknowledgements (enhanced mode, MSH-16) of the
    authenticated source system's messages, made since acknowledgement ``n``, oldest first, as one HL7 batch
    (BHS … BTS, HL7 v2.5.1 ch. 2.10.3). BHS-11 (batch control id) is the last one's number: the next request
    asks ``after`` it; BHS-12 echoes ``after``. Reading is idempotent (a lost answer is fetched again); at most
    ``_count`` (default 100, at most 500) per batch, in UTF-8."""

    authentication_classes = [SourceSystemBearerAuthentication, SourceSystemBasicAuthentication]
    permission_classes = [IsAttributable]

    @extend_schema(
        operation_id="hl7v2_application_acks",
        summary="Pick up the application acknowledgements of enhanced-mode messages, as one HL7 batch",
        tags=["hl7v2"],
        parameters=[
            OpenApiParameter("after", int, description="the BHS-11 of the previous batch (0 at first)"),
            OpenApiParameter("_count", int, description="at most this many (1-500, default 100)"),
        ],
        responses={(200, ER7): OpenApiTypes.BINARY, 400: None, 401: None, 403: None},
    )
    def get(self, request):
        caller = caller_of(request)
        if caller.source is None:
            raise drf.PermissionDenied("only a registered source system picks up HL7 v2 acknowledgements")
        after, count = _int_param(request, "after", 0), _int_param(request, "_count", 100)
        if after is None or count is None or after < 0 or not 1 <= count <= 500:
            raise drf.ValidationError("after is a number ≥ 0, _count a number from 1 to 500")
        acks = list(
            ApplicationAck.objects.filter(source=caller.source, pk__gt=after)
            .order_by("pk")
            .values_list("pk", "text")[:count]
        )
        if acks:
            ApplicationAck.objects.filter(pk__in=[pk for pk, _ in acks], taken_at__isnull=True).update(
                taken_at=timezone.now()
            )
        source = caller.source
        last = acks[-1][0] if acks else after
        now = timezone.localtime().strftime("%Y%m%d%H%M%S%z")
        header = (
            f"BHS|^~\\&|HIP|REGION|{source.sending_application}|{source.sending_facility}|{now}||||{last}|{after}\r"
        )
        body = header + "".join(text for _, text in acks) + f"BTS|{len(acks)}\r"
        return HttpResponse(body.encode(), status=200, content_type=f"{ER7}; charset=utf-8")


def _int_param(request, name: str, default: int) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return None
