"""``manage.py inbox_prune``: the HL7 v2 inbox's retention (healthplatform/ingest/operations.py)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from healthplatform.ingest.operations import inbox_prune


class Command(BaseCommand):
    help = (
        "Delete HL7 v2 inbox messages processed, skipped, replayed or rejected more than the retention period "
        "ago (HL7_INBOX_RETENTION_DAYS). Received and parked messages are never deleted: the count of old "
        "parked ones is printed for the error queue."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, help="retention in days (default: HL7_INBOX_RETENTION_DAYS)")

    def handle(self, *args, **options):
        days = options["days"] if options["days"] is not None else settings.HL7_INBOX_RETENTION_DAYS
        if days < 1:
            raise CommandError("--days must be at least 1")
        pruned = inbox_prune(older_than=dt.timedelta(days=days))
        self.stdout.write(
            f"inbox messages older than {days} days: {pruned.deleted} deleted; "
            f"{pruned.kept_parked} parked and {pruned.kept_waiting} waiting kept"
        )
        if pruned.kept_parked:
            self.stderr.write(
                f"{pruned.kept_parked} parked messages are older than the retention: replay or skip them in "
                "the admin's error queue (they are never pruned)"
            )
