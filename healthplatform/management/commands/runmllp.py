"""``manage.py runmllp``: the HL7 v2 MLLP listener (healthplatform/ingest/listener.py)."""

from __future__ import annotations

import ssl

from django.core.management.base import BaseCommand, CommandError

from healthplatform.ingest.listener import Listener, listener_run


class Command(BaseCommand):
    help = (
        "Receive HL7 v2 messages over MLLP: each is committed to the inbox before it is acknowledged; after each "
        "commit the processing is started (a Celery inbox_drain task, or in eager mode a drain in this process)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
        parser.add_argument("--port", type=int, default=2575, help="TCP port (2575 is HL7's registered port)")
        parser.add_argument("--certificate", help="PEM certificate chain: listen with TLS (MLLP over TLS)")
        parser.add_argument("--key", help="PEM private key of --certificate (if not in the same file)")
        parser.add_argument(
            "--max-bytes", type=int, default=None, help="largest message taken (bytes; HL7_MAX_MESSAGE_BYTES)"
        )
        parser.add_argument("--idle-timeout", type=float, default=600.0, help="close an idle connection (s)")
        parser.add_argument(
            "--no-drain",
            action="store_true",
            help="do not start the processing after commits (another process runs inbox_process or the workers)",
        )

    def handle(self, *args, **options):
        context = None
        if options["certificate"]:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(options["certificate"], options["key"])
            except (OSError, ssl.SSLError) as error:
                raise CommandError(f"cannot load the TLS certificate: {error}") from error
        elif options["key"]:
            raise CommandError("--key needs --certificate")
        if options["max_bytes"] is not None and options["max_bytes"] < 1024:
            raise CommandError("--max-bytes must be at least 1024")
        listener_run(
            Listener(
                host=options["host"],
                port=options["port"],
                ssl_context=context,
                max_message_bytes=options["max_bytes"],
                idle_timeout=options["idle_timeout"],
                drain=not options["no_drain"],
            )
        )
