from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    """Every read of a resident's record, keyed by the person (IHE BALP)."""

    name = "healthplatform.audit"
    label = "audit"
    verbose_name = _("Audit")
