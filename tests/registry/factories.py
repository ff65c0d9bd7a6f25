"""factory_boy factories for registry rows with valid national codes."""

from __future__ import annotations

import datetime as dt

import factory

from registry.codes import org_code_check_char, uscc_check_char
from registry.models import CodeSystem, Concept, Department, Institution, Practitioner

TODAY = dt.date.today()


def credit_code(n: int) -> str:
    """A valid unified social credit code of a public institution, distinct for each n."""
    body = f"{45600000 + n:08d}"
    first17 = "12440106" + body + org_code_check_char(body)
    return first17 + uscc_check_char(first17)


class InstitutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Institution

    code = factory.Sequence(credit_code)
    name = factory.Sequence(lambda n: f"测试医院{n}")
    level = Institution.Level.SECONDARY
    kind = Institution.Kind.HOSPITAL
    division_code = "440106"
    district = "五山街道"
    licence_number = factory.LazyAttribute(lambda o: f"{o.code[8:17]}44010611A1000")
    licence_valid_from = TODAY - dt.timedelta(days=365)
    licence_valid_until = TODAY + dt.timedelta(days=365 * 4)


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department

    institution = factory.SubFactory(InstitutionFactory)
    code = "03"
    name = "内科"


class PractitionerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Practitioner

    licence_number = factory.Sequence(lambda n: f"1202044{n:08d}")
    name = "张医生"
    role = Practitioner.Role.PHYSICIAN
    institution = factory.SubFactory(InstitutionFactory)
    valid_from = TODAY - dt.timedelta(days=30)


class CodeSystemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CodeSystem

    url = factory.Sequence(lambda n: f"http://example.org/codes/{n}")
    name = factory.Sequence(lambda n: f"Codes {n}")


class ConceptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Concept

    code_system = factory.SubFactory(CodeSystemFactory)
    code = factory.Sequence(lambda n: f"C{n}")
    display = "概念"
