"""The local demo's accounts (``manage.py demo_admin``): known to whoever ran the demo, never usable in production.

A development run (``python3 dev.py run``) creates an administrator whose password sits in a file beside the
database. If that database is later started with ``PLATFORM_ENV=production`` (a pilot promoted to a real region),
the account would still open the admin. So the demo marks its accounts with membership of ``DEMO_GROUP``, and in
production such an account cannot log in and its sessions end (``PlatformModelBackend``), and ``manage.py check
--deploy`` reports it as an error (``healthplatform.E001``) until it is deleted. Disabled rather than refusing to
start: a platform that will not start also stops every hospital's feed for one stale account.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group

DEMO_GROUP = "local demo (never in production)"


def demo_account_mark(*, user) -> None:
    """Marks ``user`` as an account of the local demo."""
    group, _ = Group.objects.get_or_create(name=DEMO_GROUP)
    user.groups.add(group)


def demo_account_refused(user) -> bool:
    """Is ``user`` a demo account while this is production (it must not log in)?"""
    return settings.PRODUCTION and user.groups.filter(name=DEMO_GROUP).exists()


def demo_accounts_active():
    """The active demo accounts (for the deploy check)."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(groups__name=DEMO_GROUP, is_active=True)
