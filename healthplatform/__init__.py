"""The platform package: Django project settings, URLs, Celery app, and the cross-store services."""

from healthplatform import fhirvalidation

# Before any R4B model class is created: the fast validation paths are bound into each model's schema then.
fhirvalidation.apply()

from healthplatform.celery import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
