from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AlertsConfig(AppConfig):
    """The alert rules (data, edited in the admin), the alerts raised and their overrides, and the CDS Hooks
    service."""

    name = "healthplatform.alerts"
    label = "alerts"
    verbose_name = _("Alerts")
