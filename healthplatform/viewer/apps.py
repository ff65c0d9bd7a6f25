from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ViewerConfig(AppConfig):
    """The clinician viewer: server-rendered pages over the record read, the alerts and the audit."""

    name = "healthplatform.viewer"
    label = "viewer"
    verbose_name = _("Clinician viewer")
