"""Registry services: validation, feeds and their credentials, code maps, bulk import."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from registry.models import ConceptMapEntry, Department, Institution, SourceSystem
from registry.selectors import (
    concept_translate,
    institution_list,
    practitioner_get_by_licence,
    practitioner_id_by_licence,
    source_system_for_hl7_sender,
)
from registry.services import (
    RegistryError,
    SourceSystemAuthError,
    concept_map_entry_set,
    department_create,
    institution_create,
    institution_update,
    practitioner_register,
    registry_bulk_import,
    source_system_authenticate,
    source_system_register,
    source_system_rotate_secret,
)
from tests.registry.factories import (
    ConceptFactory,
    DepartmentFactory,
    InstitutionFactory,
    PractitionerFactory,
    credit_code,
)

pytestmark = pytest.mark.django_db
TODAY = dt.date.today()


def hospital_fields(n=1, **overrides):
    code = credit_code(n)
    fields = {
        "code": code,
        "name": "天河区第二人民医院",
        "level": "secondary",
        "kind": "hospital",
        "division_code": "440106",
        "district": "石牌街道",
        "licence_number": f"{code[8:17]}44010611A1000",
        "licence_valid_from": TODAY - dt.timedelta(days=10),
        "licence_valid_until": TODAY + dt.timedelta(days=1800),
    }
    return {**fields, **overrides}


def test_institution_create_stores_a_valid_institution():
    inst = institution_create(**hospital_fields(code=credit_code(1).lower()))
    assert Institution.objects.get(pk=inst.pk).code == credit_code(1)
    assert inst.licence_valid_on(TODAY)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"code": "124401064552762738"}, "code"),  # wrong check character
        ({"licence_number": "ABC"}, "licence_number"),
        ({"licence_number": "45599999944010611A1000"}, "licence_number"),  # another organisation's code
        ({"division_code": "44010"}, "division_code"),
        ({"kind": "pharmacy", "licence_number": "粤CB1200012"}, "level"),  # pharmacies are unrated
        ({"licence_valid_until": TODAY - dt.timedelta(days=20)}, "licence_valid_until"),
    ],
)
def test_institution_create_rejects_wrong_formats_naming_the_field(overrides, field):
    with pytest.raises(ValidationError) as err:
        institution_create(**hospital_fields(**overrides))
    assert field in err.value.message_dict
    assert not Institution.objects.exists()


def test_institution_update_keeps_code_and_kind():
    inst = InstitutionFactory()
    institution_update(institution=inst, name="新名称", active=False)
    inst.refresh_from_db()
    assert (inst.name, inst.active) == ("新名称", False)
    with pytest.raises(RegistryError, match="code"):
        institution_update(institution=inst, code=credit_code(99))


def test_practitioner_cannot_join_an_institution_whose_licence_has_lapsed():
    inst = InstitutionFactory(licence_valid_until=TODAY - dt.timedelta(days=1))
    with pytest.raises(ValidationError) as err:
        practitioner_register(
            licence_number="120224400000001", name="李医生", role="physician", institution=inst, valid_from=TODAY
        )
    assert "valid_from" in err.value.message_dict


def test_practitioner_department_must_belong_to_the_same_institution():
    inst = InstitutionFactory()
    other_department = DepartmentFactory()
    with pytest.raises(ValidationError) as err:
        practitioner_register(
            licence_number="120224400000001",
            name="李医生",
            role="physician",
            institution=inst,
            department=other_department,
            valid_from=TODAY,
        )
    assert "department" in err.value.message_dict


def test_practitioner_licence_is_checked_against_the_role_and_found_again():
    inst = InstitutionFactory()
    dept = department_create(institution=inst, code="03", name="内科")
    with pytest.raises(ValidationError):
        practitioner_register(licence_number="12345", name="王护士", role="nurse", institution=inst, valid_from=TODAY)
    nurse = practitioner_register(
        licence_number="202044000123", name="王护士", role="nurse", institution=inst, department=dept, valid_from=TODAY
    )
    assert list(practitioner_get_by_licence(licence_number="202044000123")) == [nurse]
    assert not practitioner_get_by_licence(licence_number="202044000123", role="physician").exists()


def test_department_code_is_unique_within_an_institution():
    inst = InstitutionFactory()
    department_create(institution=inst, code="03", name="内科")
    with pytest.raises(ValidationError):
        department_create(institution=inst, code="03", name="内科二")
    assert Department.objects.filter(institution=inst).count() == 1


def test_source_system_secret_authenticates_until_rotated():
    inst = InstitutionFactory()
    source, secret = source_system_register(
        institution=inst, kind="LIS", name="检验系统", sending_application="HUAYI_LIS", sending_facility=inst.code
    )
    assert secret not in source.secret_hash
    assert source_system_authenticate(client_id=source.client_id, secret=secret) == source
    new_secret = source_system_rotate_secret(source_system=source)
    with pytest.raises(SourceSystemAuthError):
        source_system_authenticate(client_id=source.client_id, secret=secret)
    assert source_system_authenticate(client_id=source.client_id, secret=new_secret) == source
    with pytest.raises(SourceSystemAuthError):
        source_system_authenticate(client_id="ss-unknown", secret=new_secret)


def test_a_deactivated_feed_or_institution_cannot_authenticate_or_send():
    inst = InstitutionFactory()
    source, secret = source_system_register(
        institution=inst, kind="HIS", name="HIS", sending_application="HIS", sending_facility=inst.code
    )
    assert source_system_for_hl7_sender(sending_application="HIS", sending_facility=inst.code) == source
    institution_update(institution=inst, active=False)
    with pytest.raises(SourceSystemAuthError, match="deactivated"):
        source_system_authenticate(client_id=source.client_id, secret=secret)
    assert source_system_for_hl7_sender(sending_application="HIS", sending_facility=inst.code) is None


def test_two_feeds_cannot_share_an_hl7_sender():
    inst = InstitutionFactory()
    source_system_register(institution=inst, kind="HIS", name="A", sending_application="HIS", sending_facility="F1")
    with pytest.raises(ValidationError):
        source_system_register(institution=inst, kind="EMR", name="B", sending_application="HIS", sending_facility="F1")
    assert SourceSystem.objects.count() == 1


def test_concept_map_entry_replaces_the_earlier_mapping_and_translates():
    inst = InstitutionFactory()
    source, _ = source_system_register(
        institution=inst, kind="LIS", name="LIS", sending_application="LIS", sending_facility=inst.code
    )
    glucose, hba1c = ConceptFactory(code="2345-7"), ConceptFactory(code="4548-4")
    concept_map_entry_set(source_system=source, local_code="GLU", concept=hba1c)
    concept_map_entry_set(source_system=source, local_code="GLU", concept=glucose, local_display="血糖")
    assert ConceptMapEntry.objects.count() == 1
    # A mapping made without a code system serves codes sent with one; an exact match wins.
    assert concept_translate(source_system=source, local_code="GLU", local_system="L") == glucose
    concept_map_entry_set(source_system=source, local_code="GLU", local_system="L", concept=hba1c)
    assert concept_translate(source_system=source, local_code="GLU", local_system="L") == hba1c
    assert concept_translate(source_system=source, local_code="GLU") == glucose
    assert concept_translate(source_system=source, local_code="NOPE") is None


def test_bulk_import_is_all_or_nothing():
    # Every row is valid on its own; the second department clashes in the database,
    # after the institution was inserted: the institution must be rolled back too.
    inst = Institution(**hospital_fields(1))
    departments = [
        Department(institution=inst, code="03", name="内科"),
        Department(institution=inst, code="03", name="内科"),
    ]
    with pytest.raises(IntegrityError):
        registry_bulk_import(institutions=[inst], departments=departments)
    assert not Institution.objects.exists()


def test_bulk_import_validates_each_row_like_a_single_write():
    bad = Institution(**hospital_fields(3, code="124401064552762738"))
    with pytest.raises(ValidationError):
        registry_bulk_import(institutions=[bad])


def test_institution_list_filters_by_kind_level_and_licence_day():
    InstitutionFactory(level="tertiary")
    InstitutionFactory(licence_valid_until=TODAY - dt.timedelta(days=1))
    assert institution_list(level="tertiary").count() == 1
    assert institution_list(kind="hospital").count() == 2
    assert institution_list(licensed_on=TODAY).count() == 1


def test_the_current_source_system_is_reused_until_its_rows_change_however_they_change():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from registry.models import Institution, SourceSystem
    from registry.selectors import source_system_by_client_id

    inst = InstitutionFactory()
    source, _ = source_system_register(
        institution=inst, kind="LIS", name="检验系统", sending_application="HUAYI_LIS", sending_facility=inst.code
    )
    first = source_system_by_client_id(source.client_id)
    assert first == source and first.institution == inst
    with CaptureQueriesContext(connection) as queries:
        again = source_system_by_client_id(source.client_id)
    # Nothing changed: the rows' one read and no model rebuilt, but each caller has its own instances.
    assert len(queries) == 1
    assert again == first and again is not first and again.institution is not first.institution
    again.name, again.institution.name = "changed by one request", "changed too"
    assert source_system_by_client_id(source.client_id).name == "检验系统"
    assert source_system_by_client_id(source.client_id).institution.name == inst.name
    # A bulk update sets no updated_at: the rows are compared whole, so it is seen at the next request.
    SourceSystem.objects.filter(pk=source.pk).update(fhir_scopes="system/Patient.read")
    assert source_system_by_client_id(source.client_id).fhir_scopes == "system/Patient.read"
    Institution.objects.filter(pk=inst.pk).update(active=False)
    assert source_system_by_client_id(source.client_id).institution.active is False
    SourceSystem.objects.filter(pk=source.pk).delete()
    assert source_system_by_client_id(source.client_id) is None
    assert source_system_by_client_id("ss-unknown") is None


def test_a_licence_number_names_its_active_holder_before_an_inactive_one():
    number = "330000000000901"
    assert practitioner_id_by_licence(number) is None
    retired = PractitionerFactory(licence_number=number, role="physician", active=False)
    assert practitioner_id_by_licence(number) == retired.pk
    active = PractitionerFactory(licence_number=number, role="pharmacist")
    assert practitioner_id_by_licence(number) == active.pk
    PractitionerFactory(licence_number=number, role="nurse")  # a later active holder: the first active wins
    assert practitioner_id_by_licence(number) == active.pk
