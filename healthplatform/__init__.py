"""The platform package: Django project settings, URLs, Celery app, and the cross-store services."""

from healthplatform.celery import app as celery_app

__all__ = ("celery_app",)
