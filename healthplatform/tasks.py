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


@shared_task(name="healthplatform.ingest.codes_retranslate", bind=True, acks_late=True)
def codes_retranslate(self, source_id: int | None, after: int = 0, batch_size: int = 500) -> dict:
    """Re-translates one batch of stored facts (one source system's, or every source's with ``source_id``
    None) and queues the next on the same queue; a lost worker runs the batch again (the step is idempotent)."""
    from healthplatform.ingest.terminology import codes_retranslate_step

    step = codes_retranslate_step(source_id=source_id, after=after, batch_size=batch_size)
    if not step.done:
        queue = (self.request.delivery_info or {}).get("routing_key")
        codes_retranslate.apply_async((source_id, step.after, batch_size), queue=queue)
    return step.as_dict()


@shared_task(name="healthplatform.ingest.inbox_drain", acks_late=True)
def inbox_drain(limit: int = 1000) -> int:
    """Processes up to ``limit`` waiting HL7 v2 inbox messages (healthplatform/ingest/processing.py); several
    workers may drain at once (each claims a different patient's oldest message). A lost worker's message
    stays received and is taken by the next drain."""
    from healthplatform.ingest.processing import inbox_process

    return inbox_process(limit=limit)
