"""WSGI entry point (gunicorn healthplatform.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")
application = get_wsgi_application()
