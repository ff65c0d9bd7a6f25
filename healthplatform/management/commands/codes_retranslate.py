"""``manage.py codes_retranslate``: brings the stored facts of a source system (or of every one) up to its code
maps after a map changed (``healthplatform.ingest.terminology.codes_retranslate_step``)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from healthplatform.ingest.terminology import codes_retranslate_step
from registry.models import SourceSystem


class Command(BaseCommand):
    help = (
        "Adds the standard codings the code maps now give to the stored facts of one source system (--source) "
        "or of every source system with map entries, as new versions, and removes the unmapped-code rows that "
        "are mapped now. Idempotent: run it again to cover facts a feed was writing at that moment."
    )

    def add_arguments(self, parser):
        parser.add_argument("--source", metavar="CLIENT_ID", help="the source system's client id (default: all)")
        parser.add_argument("--batch-size", type=int, default=500, help="facts per transaction (default 500)")
        parser.add_argument("--after", type=int, default=0, help="resume after this fact's primary key")
        parser.add_argument("--celery", action="store_true", help="queue the run as a Celery job and return")

    def handle(self, *args, **opts):
        if opts["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        source_id = None
        if opts["source"]:
            source_id = SourceSystem.objects.filter(client_id=opts["source"]).values_list("pk", flat=True).first()
            if source_id is None:
                raise CommandError(f"no source system has the client id {opts['source']!r}")
        if opts["celery"]:
            from healthplatform.tasks import codes_retranslate

            codes_retranslate.delay(source_id, opts["after"], opts["batch_size"])
            self.stdout.write("Re-translation queued.")
            return
        after, totals = opts["after"], {"examined": 0, "translated": 0, "busy": 0}
        while True:
            step = codes_retranslate_step(source_id=source_id, after=after, batch_size=opts["batch_size"])
            after = step.after
            for key in totals:
                totals[key] += getattr(step, key)
            if step.done:
                break
            self.stdout.write(f"up to fact {after}: examined {totals['examined']}, translated {totals['translated']}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-translation done: examined {totals['examined']}, translated {totals['translated']}, "
                f"unmapped-code rows cleared {step.cleared}."
            )
        )
        if totals["busy"]:
            self.stdout.write(
                self.style.WARNING(f"{totals['busy']} facts were being written by a feed: run the command again.")
            )
