from django.apps import AppConfig


class HealthPlatformConfig(AppConfig):
    """The platform package: FHIR API, health checks, Celery tasks, deployment checks."""

    name = "healthplatform"

    def ready(self) -> None:
        from healthplatform import checks  # noqa: F401  (registers the deployment checks)
