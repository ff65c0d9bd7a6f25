"""``manage.py inbox_process``: process the HL7 v2 inbox (healthplatform/ingest/processing.py), once or in a loop."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from healthplatform.ingest.processing import inbox_process


class Command(BaseCommand):
    help = "Map waiting HL7 v2 inbox messages to FHIR and write them through the corridor."

    def add_arguments(self, parser):
        parser.add_argument("--follow", action="store_true", help="keep processing as messages arrive")
        parser.add_argument("--idle", type=float, default=0.5, help="seconds to wait when nothing is waiting")

    def handle(self, *args, **options):
        total = 0
        while True:
            done = inbox_process(limit=1000)
            total += done
            if not options["follow"]:
                break
            if not done:
                time.sleep(options["idle"])
        self.stdout.write(f"{total} messages processed or parked")
