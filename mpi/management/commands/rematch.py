"""``manage.py rematch``: re-match every automatic link after a rule or threshold change."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from mpi.models import RematchRun
from mpi.services import rematch_start, rematch_step


class Command(BaseCommand):
    help = (
        "Re-match every identity that was linked automatically, with the current rules and thresholds. "
        "Manual decisions are kept. Resumable: --resume continues the last unfinished run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--resume", action="store_true", help="continue the last unfinished run")
        parser.add_argument("--batch-size", type=int, default=500, help="identities per transaction (default 500)")
        parser.add_argument("--celery", action="store_true", help="queue the run as a Celery job and return")

    def handle(self, *args, **opts):
        if opts["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        if opts["resume"]:
            run = RematchRun.objects.filter(status=RematchRun.Status.RUNNING).order_by("-pk").first()
            if run is None:
                raise CommandError("no unfinished re-match run to resume")
        else:
            run = rematch_start(actor="manage.py rematch")
        if opts["celery"]:
            from mpi.tasks import rematch

            rematch.delay(run.pk, opts["batch_size"])
            self.stdout.write(f"Re-match run {run.pk} queued.")
            return
        while run.status != RematchRun.Status.DONE:
            run = rematch_step(run=run, batch_size=opts["batch_size"])
            self.stdout.write(f"run {run.pk}: up to identity {run.last_identity_id}: {run.counts}")
        self.stdout.write(self.style.SUCCESS(f"Re-match run {run.pk} done: {run.counts}"))
