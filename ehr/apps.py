from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EhrConfig(AppConfig):
    name = "ehr"
    verbose_name = _("Health archive")
