"""``manage.py documents_sweep``: delete stored document content that no document names (left by rollbacks)."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from emr.services import documents_sweep


class Command(BaseCommand):
    help = (
        "Delete document content files that no document row names and that are older than --hours "
        "(a transaction that rolled back after saving its content leaves such a file). Schedule it daily."
    )

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=float, default=24, help="only files older than this (default 24)")
        parser.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")

    def handle(self, *args, **opts):
        if opts["hours"] < 1:
            raise CommandError("--hours must be at least 1: younger files may belong to a transaction in flight")
        report = documents_sweep(older_than=dt.timedelta(hours=opts["hours"]), dry_run=opts["dry_run"])
        for name in report.orphaned:
            self.stdout.write(name)
        verb = "would delete" if opts["dry_run"] else "deleted"
        self.stdout.write(
            self.style.SUCCESS(f"{report.checked} content files checked; {verb} {len(report.orphaned)} orphaned")
        )
