"""The audit tests' region: the ``world`` (hospitals A and B, each with its feed; one resident, 王小明, known at
both, with a resource of every type and a document from each) and a second resident, 赵敏, known at hospital
B only, with an Observation of the same code — so that a read that should name one resident can be seen to name
only them, and a search over both names both."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from healthplatform.audit.models import AccessEvent
from mpi.models import Identity
from tests.fhirapi.client import FHIR_JSON
from tests.fhirapi.samples import patient_body, sample
from tests.fhirapi.tenants import post


def resident_add(tenant, n: int, *, name: str, birth_date: str, gender: str = "female") -> SimpleNamespace:
    """A resident of ``tenant``'s institution (MRN ``<authority>-<n>``), new to the region, with one Observation
    (haemoglobin, 718-7, business identifier n)."""
    body = patient_body(
        f"{tenant.authority}-{n}", system=f"urn:platform:authority:{tenant.authority}", name=name, birthDate=birth_date
    )
    response = post(tenant.client, "Patient", {**body, "gender": gender})
    assert response.status_code == 201, response.content
    patient_id = response.json()["id"]
    observation = sample("Observation", f"Patient/{patient_id}", n, hospital=tenant.hospital)
    response = post(tenant.client, "Observation", observation)
    assert response.status_code == 201, response.content
    identity = Identity.objects.select_related("person").get(uuid=patient_id)
    return SimpleNamespace(patient_id=patient_id, person=identity.person, observation_id=response.json()["id"])


@pytest.fixture
def region(world):
    """The world's resident (``wang``: hospital A's and B's Patient, one person) and ``zhao`` (hospital B only)."""
    wang = Identity.objects.select_related("person").get(uuid=world.a.patient_id).person
    assert Identity.objects.get(uuid=world.b.patient_id).person_id == wang.pk  # one resident, two institutions
    zhao = resident_add(world.b, 2, name="赵敏", birth_date="1970-01-02")
    assert zhao.person.pk != wang.pk
    return SimpleNamespace(world=world, a=world.a, b=world.b, wang=wang, zhao=zhao)


@pytest.fixture
def staff(db):
    """A staff user's session on the FHIR API (and the admin: a superuser)."""
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("auditor", email="", password="a-long-test-password"))
    return client


def fhir_get(client, url: str, **headers):
    return client.get(f"/fhir/{url}", HTTP_ACCEPT=FHIR_JSON, **headers)


class Events:
    """The access events recorded from a point on (``since``): ``new()`` gives those recorded after the last call."""

    def __init__(self):
        self.mark = AccessEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    def new(self) -> list[AccessEvent]:
        found = list(AccessEvent.objects.filter(pk__gt=self.mark).select_related("person").order_by("pk"))
        if found:
            self.mark = found[-1].pk
        return found


@pytest.fixture
def events(db):
    return Events()


@pytest.fixture
def audit_unwritable(db):
    """The audit's table out of reach (renamed away, in the test's transaction): a real failure to write."""
    table = AccessEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
