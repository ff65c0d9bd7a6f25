from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EmrConfig(AppConfig):
    name = "emr"
    verbose_name = _("Shared EMR documents")
