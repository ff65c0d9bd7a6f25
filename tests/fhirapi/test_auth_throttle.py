"""Source systems' client authentication throttle (healthplatform.fhirapi.throttle) through HTTP: an attacker
behind a shared address (a hospital's NAT, the region's load balancer) or naming a feed's client id cannot lock
the genuine feed out, yet is held off after AUTH_FAILURES_MAX failures; X-Forwarded-For is believed only from
TRUSTED_PROXIES. Issue 18, "Throttling and sessions"."""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import urlencode

import pytest
from django.test import Client

from healthplatform.audit.models import AccessEvent
from healthplatform.client_address import trusted_proxies_parse
from mpi.demographics import Demographics
from mpi.identifiers import make_resident_id
from mpi.selectors import identifier_systems
from mpi.services import identity_register
from registry.models import SourceSystem
from registry.services import source_system_rotate_secret
from tests.fhirapi.client import basic, issues, register_feed

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"
NAT = "203.0.113.9"  # the hospital's one public address: the attacker and the genuine feeds share it


@pytest.fixture
def three_failures_allowed(settings):
    settings.AUTH_FAILURES_MAX = 3


@pytest.fixture
def lab(db):
    return register_feed(kind=SourceSystem.Kind.LIS, name="LIS")


def token(client_id: str, secret: str, address: str = NAT, **extra):
    return Client(REMOTE_ADDR=address).post(
        "/oauth/token", urlencode({"grant_type": "client_credentials"}), content_type=FORM,
        headers=basic(client_id, secret), **extra,
    )  # fmt: skip


def fhir(client_id: str, secret: str, address: str = NAT, **extra):
    return Client(REMOTE_ADDR=address, headers=basic(client_id, secret)).get("/fhir/metadata", **extra)


def search(client_id: str, secret: str, address: str = NAT, **extra):
    return Client(REMOTE_ADDR=address, headers=basic(client_id, secret)).get("/fhir/Patient?family=王", **extra)


def test_a_feed_that_authenticated_before_is_not_locked_out_by_an_attacker_behind_its_address(
    feed, lab, three_failures_allowed
):
    assert search(feed.source.client_id, feed.secret).status_code == 200
    assert token(lab.source.client_id, lab.secret).status_code == 200
    for guess in range(10):  # far past the limit, on the feed's own client id and on others
        assert search(feed.source.client_id, f"guess-{guess}").status_code in (401, 429)
        assert token(f"made-up-{guess}", "guess").status_code in (401, 429)

    # Both genuine feeds, same address, same client ids the attacker named: still in, by Basic and by token.
    assert search(feed.source.client_id, feed.secret).status_code == 200
    assert token(feed.source.client_id, feed.secret).status_code == 200
    assert token(lab.source.client_id, lab.secret).status_code == 200
    # The attacker is refused before any secret is checked.
    refused = search(feed.source.client_id, "guess-again")
    assert refused.status_code == 429 and refused["Retry-After"] == "300"
    assert issues(refused, 429)[0]["code"] == "throttled"
    at_token = token(feed.source.client_id, "guess-again")
    assert at_token.status_code == 429 and at_token.json()["error"] == "temporarily_unavailable"
    assert at_token["Retry-After"] == "300" and at_token["Cache-Control"] == "no-store"


def test_a_new_feed_behind_a_blocked_address_still_gets_a_real_check(feed, lab, three_failures_allowed, settings):
    settings.AUTH_BLOCKED_CHECK_SECONDS = 60
    for guess in range(3):
        assert token(f"made-up-{guess}", "guess").status_code == 401
    assert token("made-up", "guess").status_code == 429  # the address is over the limit, an unknown id

    # A feed never seen before from this address gets its one real check, and is remembered after it.
    assert token(lab.source.client_id, lab.secret).status_code == 200
    assert search(lab.source.client_id, lab.secret).status_code == 200
    # That check was the slot of the interval for its client id: a guess on it now is refused unchecked.
    assert token(lab.source.client_id, "guess").status_code == 429


def test_failures_against_one_client_id_from_many_addresses_refuse_guesses_not_the_feed(
    feed, three_failures_allowed, settings
):
    settings.AUTH_BLOCKED_CHECK_SECONDS = 60
    assert search(feed.source.client_id, feed.secret, address="198.51.100.1").status_code == 200
    for n in range(3):  # a distributed guess: each address fails once
        assert search(feed.source.client_id, "guess", address=f"192.0.2.{n + 1}").status_code == 401
    assert search(feed.source.client_id, "guess", address="192.0.2.50").status_code in (401, 429)
    assert search(feed.source.client_id, "guess", address="192.0.2.51").status_code == 429

    assert search(feed.source.client_id, feed.secret, address="198.51.100.1").status_code == 200


def test_a_rotated_secret_is_checked_again_and_the_old_one_is_forgotten(feed, three_failures_allowed):
    assert search(feed.source.client_id, feed.secret).status_code == 200
    new_secret = source_system_rotate_secret(source_system=SourceSystem.objects.get(pk=feed.source.pk))

    assert search(feed.source.client_id, feed.secret).status_code == 401
    assert search(feed.source.client_id, new_secret).status_code == 200


def test_reaching_the_limit_is_logged_with_the_address_and_a_registered_client_id_only(
    feed, three_failures_allowed, caplog
):
    with caplog.at_level(logging.WARNING, logger="healthplatform.fhirapi.throttle"):
        for _ in range(3):
            search(feed.source.client_id, "s3cret-guess")
        for n in range(3):
            search(f"typed-a-secret-{n}", "x", address="192.0.2.77")
    logged = [r.getMessage() for r in caplog.records if r.name == "healthplatform.fhirapi.throttle"]
    assert logged == [
        f"authentication failures address={NAT} reached 3: credentials not remembered are refused for 300s",
        f"authentication failures client={feed.source.client_id} reached 3: credentials not remembered are "
        "refused for 300s",
        "authentication failures address=192.0.2.77 reached 3: credentials not remembered are refused for 300s",
    ]
    assert not any("guess" in line or "typed-a-secret" in line for line in logged)


# --- the client's address: X-Forwarded-For only behind TRUSTED_PROXIES ------------------------------------


def test_x_forwarded_for_from_an_untrusted_peer_does_not_escape_the_count(feed, three_failures_allowed):
    for n in range(3):
        assert search("made-up", "guess", HTTP_X_FORWARDED_FOR=f"10.9.9.{n}").status_code == 401
    # Claiming yet another address changes nothing: the peer is not a proxy of ours.
    assert search("made-up-2", "guess", HTTP_X_FORWARDED_FOR="10.9.9.200").status_code == 429


def test_behind_a_trusted_proxy_clients_are_counted_by_the_address_it_forwards(feed, three_failures_allowed, settings):
    settings.TRUSTED_PROXIES = trusted_proxies_parse(["10.0.0.0/24"])
    balancer = "10.0.0.2"
    for n in range(3):  # the attacker, spoofing a left-most entry its own proxy then extends
        forwarded = f"10.9.9.{n}, 192.0.2.66"
        assert search("made-up", "guess", address=balancer, HTTP_X_FORWARDED_FOR=forwarded).status_code == 401
    assert search("made-up", "guess", address=balancer, HTTP_X_FORWARDED_FOR="192.0.2.66").status_code == 429
    # Another client behind the same balancer is its own address, with a credential never seen before.
    other = search(feed.source.client_id, feed.secret, address=balancer, HTTP_X_FORWARDED_FOR="198.51.100.7, 10.0.0.9")
    assert other.status_code == 200


@pytest.fixture
def resident(db):
    resident_id = make_resident_id("440106", dt.date(1985, 3, 12), 123)
    identity_register(
        assigning_authority="1.2.156.999.1",
        local_id="A-1001",
        demographics=Demographics(name="王小明", sex="male", birth_date="1985-03-12", resident_id=resident_id),
    )
    return f"{identifier_systems()['resident_id']}|{resident_id}"


def test_the_audit_records_the_forwarded_client_address_behind_a_trusted_proxy(feed, resident, settings):
    settings.TRUSTED_PROXIES = trusted_proxies_parse(["10.0.0.2"])
    found = feed.client.get(
        "/fhir/Patient",
        {"identifier": resident},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="bogus, 198.51.100.7",  # a malformed hop left of the client's: not reached
    )
    assert found.status_code == 200 and len(found.json()["entry"]) == 1
    assert set(AccessEvent.objects.values_list("client_address", flat=True)) == {"198.51.100.7"}


def test_a_batch_entry_read_is_audited_with_the_same_forwarded_client_address(feed, resident, settings):
    settings.TRUSTED_PROXIES = trusted_proxies_parse(["10.0.0.2"])
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": f"Patient?identifier={resident}"}}],
    }
    answer = feed.client.post(
        "/fhir/", batch, content_type="application/fhir+json", REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="198.51.100.7",
    )  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert answer.json()["entry"][0]["response"]["status"].startswith("200")
    assert set(AccessEvent.objects.values_list("client_address", flat=True)) == {"198.51.100.7"}


@pytest.fixture
def cache_down(settings):
    """The shared cache as production has it (Redis), with its server unreachable (nothing listens there)."""
    working = settings.CACHES
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
    }
    yield
    settings.CACHES = working  # before the feed fixture's own teardown clears the cache


def test_with_the_shared_cache_down_feeds_still_authenticate_and_wrong_secrets_are_401_not_500(
    feed, cache_down, caplog
):
    caplog.set_level(logging.WARNING, logger="healthplatform.fhirapi.throttle")
    assert search(feed.source.client_id, feed.secret).status_code == 200
    assert token(feed.source.client_id, feed.secret).status_code == 200
    assert search(feed.source.client_id, "wrong").status_code == 401
    assert token(feed.source.client_id, "wrong").status_code == 401
    assert "shared cache unreachable" in caplog.text
