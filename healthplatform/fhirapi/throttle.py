"""Failed client authentications per remote address: secrets are not guessed at line speed.

After ``AUTH_FAILURES_MAX`` failed authentications (wrong or unknown client id or secret, by HTTP Basic on
the FHIR API or at the token endpoint; a wrong password at the viewer's or the admin's login,
``healthplatform.login_throttle``) from one address within ``AUTH_FAILURE_WINDOW_SECONDS``, that address
gets 429 with ``Retry-After`` for the rest of the window, before any secret is hashed (so a flood of guesses
does not burn the CPU on the deliberately slow hasher either). Counted per address, not per client id: a
lockout by client id would let anyone lock a hospital's feed out. A success does not reset the count (an
attacker holding one valid credential could otherwise interleave it). The count lives in Django's cache: per
process with the default local-memory cache, shared by every process when CACHES points at Redis.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


def _key(request) -> str:
    return f"fhirapi:auth-failures:{request.META.get('REMOTE_ADDR') or '-'}"


def auth_blocked_for(request) -> int | None:
    """Seconds to wait when this address has failed too often, else None."""
    if (cache.get(_key(request)) or 0) >= settings.AUTH_FAILURES_MAX:
        return settings.AUTH_FAILURE_WINDOW_SECONDS
    return None


def auth_failure_record(request) -> None:
    key = _key(request)
    cache.add(key, 0, settings.AUTH_FAILURE_WINDOW_SECONDS)
    try:
        failures = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, settings.AUTH_FAILURE_WINDOW_SECONDS)
        failures = 1
    if failures == settings.AUTH_FAILURES_MAX:
        # The address only: never the client id tried or the secret.
        logger.warning(
            "authentication failures address=%s reached %d: refused for %ds",
            request.META.get("REMOTE_ADDR") or "-",
            failures,
            settings.AUTH_FAILURE_WINDOW_SECONDS,
        )
