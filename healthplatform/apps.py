from django.apps import AppConfig


class HealthPlatformConfig(AppConfig):
    """The platform package: FHIR API, health checks, Celery tasks, deployment checks."""

    name = "healthplatform"

    def ready(self) -> None:
        from django.contrib import admin

        from healthplatform import (
            checks,  # noqa: F401  (registers the deployment checks)
            login_throttle,  # noqa: F401  (counts failed password logins)
        )
        from healthplatform.audit.admin import read_logging_install

        # The admin (first of INSTALLED_APPS) has discovered every store's pages by now.
        read_logging_install(admin.site)
