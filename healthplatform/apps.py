from django.apps import AppConfig


class HealthPlatformConfig(AppConfig):
    """The platform package: FHIR API, health checks, Celery tasks, deployment checks."""

    name = "healthplatform"

    def ready(self) -> None:
        from django.contrib import admin

        from healthplatform import checks  # noqa: F401  (registers the deployment checks)
        from healthplatform.audit.admin import read_logging_install
        from healthplatform.login_throttle import AdminLoginForm

        # Says so when axes locked the login out (healthplatform.login_throttle).
        admin.site.login_form = AdminLoginForm

        # The admin (first of INSTALLED_APPS) has discovered every store's pages by now.
        read_logging_install(admin.site)
