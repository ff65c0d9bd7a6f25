from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AlertsConfig(AppConfig):
    """The alert rules (data, edited in the admin), the alerts raised and their overrides, and the CDS Hooks
    service."""

    name = "healthplatform.alerts"
    label = "alerts"
    verbose_name = _("Alerts")

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from healthplatform.alerts.evaluate import ruleset_forget
        from healthplatform.alerts.models import AlertPolicy, CrossReactivity, Recognition, RetestWindow

        for model in (RetestWindow, Recognition, CrossReactivity, AlertPolicy):
            for signal, kind in ((post_save, "save"), (post_delete, "del")):
                signal.connect(ruleset_forget, sender=model, dispatch_uid=f"alerts-rules-{kind}-{model.__name__}")
