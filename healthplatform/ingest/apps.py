from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IngestConfig(AppConfig):
    """The write corridor, and the HL7 v2 intake's durable inbox (the messages as they arrived)."""

    name = "healthplatform.ingest"
    label = "ingest"
    verbose_name = _("Intake")
