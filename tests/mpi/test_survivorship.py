"""Issue 18, the golden record: which source wins for which field (mpi/services/links.py), and a change of
contact details by one institution visible to every other as such — in the MPI's history, in the golden
record's provenance and in the golden FHIR Patient — not silent.

The scenario of the issue: institution A registers a new MRN with resident R's identity number, name and birth
date, but a new phone and address.
"""

from __future__ import annotations

import datetime as dt

import pytest

from healthplatform.fhirapi.resources.patient import REPORTED_BY, patient_resource
from mpi.demographics import Demographics
from mpi.identifiers import make_resident_id
from mpi.models import LinkEvent, Person
from mpi.services import identity_register, identity_unlink
from registry.models import SourceSystem
from registry.services import source_system_register
from tests.registry.factories import InstitutionFactory

pytestmark = pytest.mark.django_db

RID = make_resident_id("440106", dt.date(1980, 5, 3), 123)
R = {"name": "王小明", "sex": "male", "birth_date": "1980-05-03", "resident_id": RID}
REGISTER = "REGION-POPULATION-REGISTER"


def _source(name: str) -> SourceSystem:
    institution = InstitutionFactory(name=name)
    return source_system_register(
        institution=institution, kind="HIS", name="HIS", sending_application="HIS", sending_facility=name[:8]
    )[0]


def _register(authority: str, mrn: str, source=None, **demographics):
    return identity_register(
        assigning_authority=authority, local_id=mrn, demographics=Demographics(**demographics), source=source
    )


@pytest.fixture
def hospitals():
    return _source("第一人民医院"), _source("第二人民医院")


def test_a_new_phone_and_address_from_another_institution_win_and_say_so(hospitals):
    b, a = hospitals
    first = _register("HOSP-B", "B-1", b, **R, phone="13800138000", address="越秀区中山一路1号")
    second = _register("HOSP-A", "A-1", a, **R, phone="13900139000", address="天河区体育西路2号")
    person = Person.objects.get(pk=first.identity.person_id)
    assert second.identity.person_id == person.pk

    # Most recent report wins for contact details...
    assert (person.phone, person.address) == ("13900139000", "天河区体育西路2号")
    # ...and the golden record says who reported it, since when, and what it replaced, reported by whom.
    phone = person.provenance["phone"]
    assert phone["institution"] == a.institution.code and phone["institution_name"] == "第二人民医院"
    assert phone["previous"]["value"] == "13800138000"
    assert phone["previous"]["institution"] == b.institution.code
    # The history names the change and the institution.
    change = LinkEvent.objects.get(person=person, kind=LinkEvent.Kind.CONTACT)
    assert change.identity_id == second.identity.pk
    assert change.detail["fields"] == ["address", "phone"]
    assert change.detail["reported_by"]["institution"] == a.institution.code

    # Every other institution reads the golden Patient: the new phone with its reporter and since when, the
    # replaced one with when it stopped being the golden value.
    patient = patient_resource(Person.objects.prefetch_related("identities").get(pk=person.pk))
    current, replaced = patient["telecom"]
    assert current["value"] == "13900139000" and current["period"]["start"]
    assert current["extension"][0]["url"] == REPORTED_BY
    assert current["extension"][0]["valueReference"]["reference"] == f"Organization/{a.institution.code}"
    assert replaced["value"] == "13800138000" and replaced["period"]["end"]
    assert replaced["extension"][0]["valueReference"]["display"] == "第一人民医院"
    assert [address["text"] for address in patient["address"]] == ["天河区体育西路2号", "越秀区中山一路1号"]


def test_a_first_phone_is_not_a_change_and_the_same_phone_again_changes_nothing(hospitals):
    b, a = hospitals
    first = _register("HOSP-B", "B-1", b, **R)
    _register("HOSP-A", "A-1", a, **R, phone="13900139000")
    _register("HOSP-B", "B-2", b, **R, phone="13900139000")
    person = Person.objects.get(pk=first.identity.person_id)
    assert person.phone == "13900139000"
    assert person.provenance["phone"]["institution"] == a.institution.code  # the first to report it
    assert "previous" not in person.provenance["phone"]
    assert not LinkEvent.objects.filter(person=person, kind=LinkEvent.Kind.CONTACT).exists()


def test_the_population_registers_name_and_birth_date_stand_against_an_institutions(hospitals):
    _, a = hospitals
    register = _register(REGISTER, "R-1", None, **R, phone="13800138000")
    # A hospital's record of the same resident (identity number agrees), its name misspelt, a new phone.
    _register("HOSP-A", "A-1", a, **{**R, "name": "王小鸣"}, phone="13900139000")
    person = Person.objects.get(pk=register.identity.person_id)
    assert person.name == "王小明"
    assert person.provenance["name"]["authority"] == REGISTER
    assert person.phone == "13900139000"  # contact details: the most recent, whoever reported them


def test_the_refresh_after_an_unlink_applies_the_same_rules(hospitals):
    b, a = hospitals
    kept = _register("HOSP-B", "B-1", b, **R, phone="13800138000")
    moved = _register("HOSP-A", "A-1", a, **R, phone="13900139000")
    person_id = kept.identity.person_id
    assert Person.objects.get(pk=person_id).phone == "13900139000"
    identity_unlink(identity=moved.identity, actor="reviewer", reason="not the same resident")
    person = Person.objects.get(pk=person_id)
    # The phone falls back to what the remaining identity reported, and the change is recorded as such.
    assert person.phone == "13800138000"
    assert person.provenance["phone"]["institution"] == b.institution.code
    assert LinkEvent.objects.filter(person=person, kind=LinkEvent.Kind.CONTACT).count() == 2
