"""ASGI entry point."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")
# What get_asgi_application() does, with the platform's request class (healthplatform/request_charset.py).
django.setup(set_prefix=False)
from healthplatform.request_charset import PlatformASGIHandler  # noqa: E402  (needs the settings)

application = PlatformASGIHandler()
