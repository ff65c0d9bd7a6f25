"""Source systems' client authentication (HTTP Basic on the FHIR API and HL7 v2 over HTTP, the client
credentials at ``/oauth/token``), throttled so that secrets are not guessed at line speed and yet an attacker
cannot lock a genuine feed out.

Every client authentication goes through ``client_authenticate``, which decides in this order:

1. **A remembered credential is accepted.** A client id and secret that authenticated before are remembered
   (keyed by an HMAC of the pair with ``SECRET_KEY``, never the secret) for ``AUTH_REMEMBER_SECONDS``, and are
   accepted again without the slow password hasher and *whatever the failure counts are*: a feed that
   authenticated in the last day is never locked out by someone else's failures from its address (a hospital's
   NAT, the region's load balancer) or against its client id. The source system is reloaded on every use
   (one indexed query), so a deactivation or a rotated secret ends it at once.
2. **Failures are counted per client address and per claimed client id** (``AUTH_FAILURES_MAX`` within
   ``AUTH_FAILURE_WINDOW_SECONDS``, in the shared cache: Redis in production, so every worker process counts
   together). An address over the limit (an attacker spraying client ids) or a client id over the limit (a
   distributed attack on one feed) refuses a credential it does not remember with 429 and ``Retry-After``,
   before any secret is hashed.
3. **While refused, a registered client id still gets one real check per** ``AUTH_BLOCKED_CHECK_SECONDS``
   (a slot shared by every process): a genuine feed with a credential not remembered yet (first contact, a
   secret just rotated, a flushed cache) gets through within a few retries of a careless neighbour's
   failures, while an attacker is held to one guess a second per client id instead of line speed. A flood
   from one determined attacker can take most of those slots: such a feed then waits the window out, which
   is the residual risk of this design (README, "Client authentication throttling").

**When the shared cache is down** (Redis restarting, unreachable), authentication goes on without it: every
credential is checked against its stored hash (no remembered successes), no failure is counted and nobody is
refused for failures — a warning says so, once a minute per process. Guessing is then bound by the slow
hasher alone until the cache is back; refusing every feed in the region (a 500 on every request) would be worse.

Why not per address alone (the previous design): one attacker behind a NAT locked out every feed behind it.
Why not a lockout per client id: anyone could lock a hospital's feed out by naming it. Why remember a success
rather than reset the counts on it: an attacker holding one valid credential could otherwise interleave it
to keep guessing. Addresses come from ``healthplatform.client_address`` (``X-Forwarded-For`` only behind
``TRUSTED_PROXIES``). Logs name the address and a registered client id, never a secret or an unregistered id
(which may be a mistyped secret).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from django.conf import settings
from django.core.cache import cache

from registry.models import SourceSystem
from registry.selectors import source_system_by_client_id
from registry.services import SourceSystemAuthError, source_system_authenticate

logger = logging.getLogger(__name__)


class ClientAuthThrottled(Exception):
    """Too many failed authentications from this address or against this client id: try after ``wait`` s."""

    def __init__(self, wait: int):
        super().__init__(f"too many failed client authentications: retry after {wait}s")
        self.wait = wait


# What a cache backend raises when its server cannot be reached (Django's Redis backend passes redis-py's
# errors through; a socket error may come bare).
try:
    from redis.exceptions import RedisError as _CacheError
except ImportError:  # pragma: no cover - redis-py is a dependency; kept so that a laptop without it still runs
    _CacheError = OSError
CACHE_DOWN = (_CacheError, OSError)
_CACHE_DOWN_WARN_SECONDS = 60
_cache_down_warned_at = 0.0


def _cache_down(operation: str, exc: BaseException) -> None:
    global _cache_down_warned_at
    now = time.monotonic()
    if now - _cache_down_warned_at >= _CACHE_DOWN_WARN_SECONDS:
        _cache_down_warned_at = now
        logger.warning(
            "shared cache unreachable (%s in %s): client authentications are checked without throttling",
            type(exc).__name__,
            operation,
        )


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _remembered_key(client_id: str, secret: str) -> str:
    # HMAC with SECRET_KEY: a dump of the shared cache gives no fast oracle for guesses.
    mac = hmac.new(settings.SECRET_KEY.encode(), secret.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return f"fhirapi:source-auth:{_digest(client_id)}:{mac.hexdigest()}"


def _stamp(source: SourceSystem) -> str:
    return source.secret_rotated_at.isoformat() if source.secret_rotated_at else ""


def _remembered_source(key: str, client_id: str) -> SourceSystem | None:
    """The source system a remembered success names, if it still holds (active, same secret)."""
    remembered = cache.get(key)
    if not remembered:
        return None
    source = source_system_by_client_id(client_id)
    if (
        source is None
        or source.pk != remembered["id"]
        or not (source.active and source.institution.active)
        or _stamp(source) != remembered["stamp"]
    ):
        cache.delete(key)
        return None
    return source


def _failure_keys(address: str | None, client_id: str) -> dict[str, str]:
    return {
        "address": f"fhirapi:auth-failures:address:{address or '-'}",
        "client": f"fhirapi:auth-failures:client:{_digest(client_id)}",
    }


def _over_limit(keys: dict[str, str]) -> bool:
    counts = cache.get_many(list(keys.values()))
    return any((counts.get(key) or 0) >= settings.AUTH_FAILURES_MAX for key in keys.values())


def _count(key: str) -> int:
    cache.add(key, 0, settings.AUTH_FAILURE_WINDOW_SECONDS)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, settings.AUTH_FAILURE_WINDOW_SECONDS)
        return 1


def _failure_record(keys: dict[str, str], address: str | None, client_id: str) -> None:
    for kind, key in keys.items():
        if _count(key) != settings.AUTH_FAILURES_MAX:
            continue
        if kind == "address":
            named = f"address={address or '-'}"
        else:
            named = f"client={client_id if source_system_by_client_id(client_id) else '(unregistered)'}"
        logger.warning(
            "authentication failures %s reached %d: credentials not remembered are refused for %ds",
            named,
            settings.AUTH_FAILURES_MAX,
            settings.AUTH_FAILURE_WINDOW_SECONDS,
        )


def _check_slot_taken(client_id: str) -> bool:
    """Take this client id's one real check of the interval while it is refused (False: taken already, or an
    unregistered id, which would only burn the hasher)."""
    if source_system_by_client_id(client_id) is None:
        return False
    return cache.add(f"fhirapi:auth-slot:{_digest(client_id)}", 1, settings.AUTH_BLOCKED_CHECK_SECONDS)


def client_authenticate(*, address: str | None, client_id: str, secret: str) -> SourceSystem:
    """The source system these credentials belong to, throttled as the module's docstring says.

    Raises ``ClientAuthThrottled`` (answer 429 with ``Retry-After``) or ``SourceSystemAuthError`` (401).
    """
    try:
        return _throttled_authenticate(address=address, client_id=client_id, secret=secret)
    except CACHE_DOWN as exc:
        _cache_down("client_authenticate", exc)
        return source_system_authenticate(client_id=client_id, secret=secret)


def _throttled_authenticate(*, address: str | None, client_id: str, secret: str) -> SourceSystem:
    key = _remembered_key(client_id, secret)
    source = _remembered_source(key, client_id)
    if source is not None:
        return source
    keys = _failure_keys(address, client_id)
    if _over_limit(keys) and not _check_slot_taken(client_id):
        raise ClientAuthThrottled(settings.AUTH_FAILURE_WINDOW_SECONDS)
    try:
        source = source_system_authenticate(client_id=client_id, secret=secret)
    except SourceSystemAuthError:
        try:
            _failure_record(keys, address, client_id)
        except CACHE_DOWN as exc:
            _cache_down("failure count", exc)
        raise
    try:
        cache.set(key, {"id": source.pk, "stamp": _stamp(source)}, settings.AUTH_REMEMBER_SECONDS)
    except CACHE_DOWN as exc:
        _cache_down("remember", exc)
    return source
