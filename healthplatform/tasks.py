"""Platform-wide Celery tasks. Thin: each calls one function of the platform."""

from celery import shared_task

from healthplatform.health import platform_health


@shared_task(name="healthplatform.health_check")
def health_check() -> dict:
    """Runs the health check inside a worker: proves broker, worker and database work together."""
    return platform_health()


@shared_task(name="healthplatform.ingest.bundle_apply")
def ingest_bundle(source_id: int, bundle: dict) -> dict:
    """Applies a transaction or batch Bundle as the source system ``source_id`` through the write corridor
    (what a feed processed off its inbox does); answers each entry's status and location, or the refusal."""
    from healthplatform.ingest.apply import bundle_apply_as_source

    return bundle_apply_as_source(source_id=source_id, bundle=bundle)
