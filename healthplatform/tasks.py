"""Platform-wide Celery tasks. Thin: each calls one function of the platform."""

from celery import shared_task

from healthplatform.health import platform_health


@shared_task(name="healthplatform.health_check")
def health_check() -> dict:
    """Runs the health check inside a worker: proves broker, worker and database work together."""
    return platform_health()
