"""Typed reading of settings from the environment.

Every getter names the variable in its error, so a bad deployment fails at
start with a message an operator can act on. A secret may also be given as
``NAME_FILE`` (a path whose content is the value), the convention of Docker
and Kubernetes secrets; the plain variable wins when both are set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# Database URL schemes we run on. dj-database-url knows more (MySQL, Oracle,
# CockroachDB ...), but the platform is built and tested on these two.
DATABASE_SCHEMES = {"sqlite", "postgres", "postgresql", "pgsql", "postgis"}
BROKER_SCHEMES = {"redis", "rediss", "amqp", "amqps", "pyamqp"}
CACHE_SCHEMES = {"redis", "rediss", "unix", "locmem"}


class Env:
    """Reads typed values from a mapping (``os.environ`` unless told otherwise)."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self.environ = os.environ if environ is None else environ

    def raw(self, name: str) -> str | None:
        """The value of ``name``, or the content of the file named by ``name_FILE``."""
        # An empty plain variable counts as unset (compose files often carry NAME=).
        if self.environ.get(name, "") != "":
            return self.environ[name]
        path = self.environ.get(f"{name}_FILE")
        if path:
            try:
                return Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ImproperlyConfigured(f"{name}_FILE: cannot read {path!r}: {exc.strerror}") from exc
            except UnicodeDecodeError as exc:
                raise ImproperlyConfigured(f"{name}_FILE: {path!r} is not UTF-8 text") from exc
        return None

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        return default if value is None else value.strip()

    def bool(self, name: str, default: bool = False) -> bool:
        value = self.raw(name)
        if value is None or not value.strip():
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ImproperlyConfigured(f"{name}: expected a boolean (true/false, 1/0, yes/no), got {value!r}")

    def int(self, name: str, default: int, *, minimum: int | None = None) -> int:
        value = self.raw(name)
        if value is None or not value.strip():
            return default
        try:
            number = int(value.strip())
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: expected an integer, got {value!r}") from exc
        if minimum is not None and number < minimum:
            raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {number}")
        return number

    def float(self, name: str, default: float) -> float:
        value = self.raw(name)
        if value is None or not value.strip():
            return default
        try:
            return float(value.strip())
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: expected a number, got {value!r}") from exc

    def list(self, name: str, default: list[str] | None = None) -> list[str]:
        value = self.raw(name)
        if value is None:
            return list(default or [])
        return [item.strip() for item in value.split(",") if item.strip()]

    def sizes(self, name: str, default: dict[str, int] | None = None) -> dict[str, int]:
        """``Name=bytes`` pairs, comma-separated (``Binary=67108864,Observation=1048576``), over ``default``."""
        value = self.raw(name)
        sizes = dict(default or {})
        for item in (value or "").split(","):
            if not item.strip():
                continue
            key, sep, number = item.partition("=")
            if not sep or not key.strip() or not number.strip().isdigit():
                raise ImproperlyConfigured(f"{name}: expected Name=bytes pairs separated by commas, got {item!r}")
            sizes[key.strip()] = int(number)
        return sizes

    def path(self, name: str, default: Path) -> Path:
        value = self.raw(name)
        return Path(value).expanduser().resolve() if value else default

    def database(self, name: str, default_sqlite: Path) -> dict[str, Any]:
        """A Django ``DATABASES`` entry from a URL; SQLite at ``default_sqlite`` when unset."""
        value = self.raw(name)
        if not value:
            return {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(default_sqlite),
                # Tests with a real worker process need a test database that
                # two processes can open: a file, not :memory:.
                "TEST": {"NAME": str(default_sqlite.with_name("test-" + default_sqlite.name))},
                "OPTIONS": {"timeout": 20},
            }
        value = value.strip()
        try:
            scheme = urlsplit(value).scheme.lower()
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: cannot parse the URL ({exc.__class__.__name__})") from exc
        if "://" not in value or scheme not in DATABASE_SCHEMES:
            raise ImproperlyConfigured(
                f"{name}: expected postgresql://user:password@host:port/dbname or sqlite:///path, "
                f"got a value with scheme {scheme or 'none'!r}"
            )
        try:
            config = dj_database_url.parse(value, conn_max_age=60, conn_health_checks=True)
        except (ValueError, KeyError) as exc:
            # The message never echoes the URL: it may carry a password.
            raise ImproperlyConfigured(f"{name}: cannot parse the URL ({exc.__class__.__name__})") from exc
        if config["ENGINE"].endswith("postgresql"):
            if not config.get("NAME"):
                raise ImproperlyConfigured(f"{name}: the URL names no database (…/dbname)")
            try:
                config.get("PORT") and int(config["PORT"])
            except ValueError as exc:
                raise ImproperlyConfigured(f"{name}: the port is not a number") from exc
            # Parameters travel beside the statement (libpq's extended protocol) instead of being quoted into
            # its text by the client: a transaction Bundle's INSERT of the request as received (~40 kB) no
            # longer has its text escaped and parsed again, and the FHIR write path took ~8 % less time per
            # Bundle (bench/fhir_speed.py, alternating runs: 2,442 / 2,556 -> 2,560 / 2,702 resources/s).
            config.setdefault("OPTIONS", {})["server_side_binding"] = True
            # Django's backend with psycopg's C loader for timestamps (healthplatform/postgresql/base.py).
            config["ENGINE"] = "healthplatform.postgresql"
        elif config.get("NAME") in (None, "", ":memory:"):
            raise ImproperlyConfigured(f"{name}: the SQLite URL names no file (sqlite:///path/to/file)")
        return config

    def broker_url(self, name: str) -> str | None:
        """A Celery broker URL, or ``None`` for in-process (eager) tasks."""
        value = self.str(name)
        if not value:
            return None
        try:
            scheme = urlsplit(value).scheme.lower()
        except ValueError:
            scheme = ""
        if "://" not in value or scheme not in BROKER_SCHEMES:
            raise ImproperlyConfigured(
                f"{name}: expected redis://host:port/db or amqp://user:password@host:port/vhost, "
                f"got a value with scheme {scheme or 'none'!r}"
            )
        return value

    def cache(self, name: str) -> dict[str, Any]:
        """A Django ``CACHES`` entry from a URL: ``redis://host:6379/1`` (``rediss://``, ``unix://``) is Django's
        Redis cache; unset, or ``locmem://``, the memory of this process (a laptop's one process)."""
        value = self.str(name)
        if not value or value == "locmem://":
            return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "healthplatform"}
        try:
            scheme = urlsplit(value).scheme.lower()
        except ValueError:
            scheme = ""
        if "://" not in value or scheme not in CACHE_SCHEMES - {"locmem"}:
            # Never echoes the URL: it may carry a password.
            raise ImproperlyConfigured(
                f"{name}: expected redis://host:6379/db (or rediss://, unix://, locmem://), "
                f"got a value with scheme {scheme or 'none'!r}"
            )
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": value,
            "KEY_PREFIX": "healthplatform",
        }
