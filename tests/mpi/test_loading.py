"""Initial load from the population register, and registrations matching against it afterwards."""

from __future__ import annotations

import datetime as dt

import pytest

from mpi.demographics import Demographics
from mpi.identifiers import make_resident_id
from mpi.loading import RegisterRecord, population_load
from mpi.models import Identifier, Identity, MatchKey, Person
from mpi.services import identity_register

pytestmark = pytest.mark.django_db


def record(i: int, **kw) -> RegisterRecord:
    rid = make_resident_id("440106", dt.date(1970, 1, 1) + dt.timedelta(days=i * 97), 2 * i + 1)
    data = {"name": f"张{'伟芳娜敏静'[i % 5]}{'明华强军平'[i // 5 % 5]}", "sex": "male", "resident_id": rid}
    return RegisterRecord(f"R{i:05d}", Demographics(**{**data, **kw}))


def test_population_load_makes_one_person_per_record_with_keys_and_trusted_numbers():
    result = population_load([record(i) for i in range(30)], assigning_authority="POP", actor="test", batch_size=7)
    assert result.loaded == 30 and result.rejected == []
    assert Person.objects.count() == Identity.objects.count() == 30
    assert Identifier.objects.filter(kind="resident_id", trusted=True).count() == 30
    assert MatchKey.objects.count() > 30
    assert set(Identity.objects.values_list("link_kind", flat=True)) == {"new"}


def test_invalid_or_repeated_numbers_are_returned_for_ordinary_registration():
    good = record(1)
    bad = RegisterRecord("R9", Demographics(name="李四", resident_id="110105194912310021"))
    result = population_load([good, bad, record(1)], assigning_authority="POP", actor="test")
    assert result.loaded == 1
    assert [r.local_id for r in result.rejected] == ["R9", "R00001"]
    again = population_load([record(1)], assigning_authority="POP2", actor="test")
    assert again.loaded == 0 and len(again.rejected) == 1


def test_a_clinic_registration_links_to_the_loaded_person():
    population_load([record(i) for i in range(10)], assigning_authority="POP", actor="test")
    r3 = record(3).demographics
    reg = identity_register(
        assigning_authority="CLINIC",
        local_id="77",
        demographics=Demographics(name=r3.name, resident_id=r3.resident_id.lower(), sex="male"),
    )
    assert reg.decision == "identifier"
    assert reg.person == Identity.objects.get(local_id="R00003").person
