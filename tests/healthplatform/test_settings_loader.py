"""The settings loader: typed values, *_FILE secrets, database and broker URLs, production guards."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from healthplatform.envconfig import Env

ROOT = Path(__file__).resolve().parents[2]


def test_booleans_integers_and_lists_are_typed():
    env = Env({"A": "yes", "B": "0", "N": " 42 ", "L": "a.example, b.example,,"})
    assert env.bool("A") is True
    assert env.bool("B", default=True) is False
    assert env.bool("MISSING", default=True) is True
    assert env.int("N", default=1) == 42
    assert env.list("L") == ["a.example", "b.example"]


def test_sizes_per_name_are_read_over_their_defaults_and_a_bad_pair_names_its_variable():
    env = Env({"SIZES": "Observation=1048576, DiagnosticReport=2097152", "BAD": "Observation=big"})
    assert env.sizes("SIZES", {"Binary": 9, "Observation": 1}) == {
        "Binary": 9,
        "Observation": 1048576,
        "DiagnosticReport": 2097152,
    }
    assert env.sizes("MISSING", {"Binary": 9}) == {"Binary": 9}
    with pytest.raises(ImproperlyConfigured, match="BAD"):
        env.sizes("BAD")


@pytest.mark.parametrize(("name", "value", "getter"), [("DEBUG", "maybe", "bool"), ("WORKERS", "four", "int")])
def test_a_wrong_value_names_its_variable(name, value, getter):
    env = Env({name: value})
    with pytest.raises(ImproperlyConfigured, match=name):
        env.bool(name) if getter == "bool" else env.int(name, default=1)


def test_a_secret_can_come_from_a_file_and_the_plain_variable_wins(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("from-the-file\n")
    assert Env({"SECRET_KEY_FILE": str(secret)}).str("SECRET_KEY") == "from-the-file"
    assert Env({"SECRET_KEY_FILE": str(secret), "SECRET_KEY": "plain"}).str("SECRET_KEY") == "plain"
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY_FILE"):
        Env({"SECRET_KEY_FILE": str(tmp_path / "missing")}).str("SECRET_KEY")


def test_database_defaults_to_a_sqlite_file_with_a_file_test_database(tmp_path):
    config = Env({}).database("DATABASE_URL", default_sqlite=tmp_path / "p.sqlite3")
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "p.sqlite3")
    assert config["TEST"]["NAME"].endswith("test-p.sqlite3")


def test_postgresql_url_is_parsed():
    config = Env({"DATABASE_URL": "postgresql://hp:pw@db.internal:5433/region"}).database("DATABASE_URL", Path("x"))
    assert config["ENGINE"] == "healthplatform.postgresql"  # Django's, with psycopg's C timestamp loader
    assert (config["HOST"], config["PORT"], config["NAME"], config["USER"]) == ("db.internal", 5433, "region", "hp")
    # Parameters are bound by the server (the whole suite runs so on PostgreSQL in CI).
    assert config["OPTIONS"]["server_side_binding"] is True


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "postgres//missing-colon/db",
        "mysql2://user@host/db",
        "postgresql://user@host:port/db",
        "postgresql://user@host:5432/",
        "postgresql://user@[::1/db",
        "sqlite://",
    ],
)
def test_malformed_database_url_fails_naming_the_variable_without_echoing_it(url):
    with pytest.raises(ImproperlyConfigured) as err:
        Env({"DATABASE_URL": url}).database("DATABASE_URL", Path("x"))
    assert str(err.value).startswith("DATABASE_URL:")
    assert "user@host" not in str(err.value)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "amqp://guest:guest@127.0.0.1:5672//"])
def test_broker_url_accepts_redis_and_rabbitmq(url):
    assert Env({"CELERY_BROKER_URL": url}).broker_url("CELERY_BROKER_URL") == url


def test_no_broker_means_in_process_tasks_and_a_wrong_one_is_refused():
    assert Env({}).broker_url("CELERY_BROKER_URL") is None
    with pytest.raises(ImproperlyConfigured, match="CELERY_BROKER_URL"):
        Env({"CELERY_BROKER_URL": "kafka://somewhere"}).broker_url("CELERY_BROKER_URL")


def test_the_cache_is_redis_from_its_url_and_this_process_memory_without_one():
    redis = Env({"CACHE_URL": "redis://:pw@cache.internal:6379/1"}).cache("CACHE_URL")
    assert redis["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert redis["LOCATION"] == "redis://:pw@cache.internal:6379/1"
    assert Env({}).cache("CACHE_URL")["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    with pytest.raises(ImproperlyConfigured, match="CACHE_URL") as err:
        Env({"CACHE_URL": "memcached://:pw@cache.internal"}).cache("CACHE_URL")
    assert "pw" not in str(err.value)


def test_an_empty_variable_counts_as_unset(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("from-the-file")
    env = Env({"SECRET_KEY": "", "SECRET_KEY_FILE": str(secret), "SECURE_SSL_REDIRECT": ""})
    assert env.str("SECRET_KEY") == "from-the-file"
    assert env.bool("SECURE_SSL_REDIRECT", default=True) is True


def _manage_check(tmp_path, **overrides):
    ignored = {
        "DATABASE_URL", "SECRET_KEY", "ALLOWED_HOSTS", "CELERY_BROKER_URL", "PLATFORM_ENV", "LOG_LEVEL", "CACHE_URL",
        "TRUSTED_PROXIES",
    }  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ignored}
    env.update({"PLATFORM_DATA_DIR": str(tmp_path), **overrides})
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_platform_refuses_to_start_with_a_malformed_database_url(tmp_path):
    result = _manage_check(tmp_path, DATABASE_URL="postgres//oops")
    assert result.returncode != 0
    assert "DATABASE_URL:" in result.stderr


PRODUCTION = {
    "PLATFORM_ENV": "production",
    "SECRET_KEY": "k" * 50,
    "ALLOWED_HOSTS": "hip.example",
    "DATABASE_URL": "postgresql://hp@db.internal:5432/region",
    "CELERY_BROKER_URL": "redis://broker.internal:6379/0",
    "CACHE_URL": "redis://broker.internal:6379/1",
}


@pytest.mark.parametrize(
    ("missing", "value", "named"),
    [
        ("SECRET_KEY", "", "SECRET_KEY"),
        ("SECRET_KEY", "change-me-to-a-long-random-string-of-at-least-32-characters", "SECRET_KEY"),
        ("ALLOWED_HOSTS", "", "ALLOWED_HOSTS"),
        ("DATABASE_URL", "", "DATABASE_URL"),
        ("CELERY_BROKER_URL", "", "CELERY_BROKER_URL"),
        # Failed authentications counted per process would multiply the limit by the workers (issue 18).
        ("CACHE_URL", "", "CACHE_URL"),
        ("CACHE_URL", "locmem://", "CACHE_URL"),
        ("CACHE_URL", "memcached://cache.internal:11211", "CACHE_URL"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,balancer.internal", "TRUSTED_PROXIES"),
        ("LOG_LEVEL", "chatty", "LOG_LEVEL"),
    ],
)
def test_production_refuses_to_start_without_its_settings(tmp_path, missing, value, named):
    result = _manage_check(tmp_path, **{**PRODUCTION, missing: value})
    assert result.returncode != 0
    assert f"{named}:" in result.stderr


def test_production_starts_with_all_its_settings(tmp_path):
    result = _manage_check(tmp_path, **PRODUCTION, LOG_LEVEL="warning")
    assert result.returncode == 0, result.stderr


def test_development_refuses_to_serve_other_hosts_with_debug_on(tmp_path):
    result = _manage_check(tmp_path, ALLOWED_HOSTS="hip.example")
    assert result.returncode != 0 and "ALLOWED_HOSTS:" in result.stderr


def test_development_generates_and_keeps_a_secret_key(tmp_path):
    assert _manage_check(tmp_path).returncode == 0
    first = (tmp_path / "dev-secret-key").read_text()
    assert _manage_check(tmp_path).returncode == 0
    assert (tmp_path / "dev-secret-key").read_text() == first and len(first) >= 50
