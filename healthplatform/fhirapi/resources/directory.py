"""The registry as an IHE mCSD directory: institutions as Organization (and their premises as a site
Location), departments as Location, practitioners as Practitioner; and those resources parsed back
into the registry's directory writes.

Ids are derived from the registry's own keys, so they are stable and need no column:
``Organization/{institution code}``, ``Location/{institution code}`` (the institution's site),
``Location/{institution code}-{department code}``, ``Practitioner/{primary key}``. An institution code
(GB 32100) and a department code never contain "-", so the two Location forms cannot collide.
``meta.versionId`` is the row's last save (``registry.services.row_version``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pydantic
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from fhir.resources.R4B.location import Location as FHIRLocation
from fhir.resources.R4B.organization import Organization as FHIROrganization
from fhir.resources.R4B.practitioner import Practitioner as FHIRPractitioner

from healthplatform.fhirapi.outcome import FHIRError, Issue
from healthplatform.ingest.validation import validation_issues
from registry.codes import (
    DEPARTMENT_CODE_SYSTEM,
    INSTITUTION_CODE_SYSTEM,
    INSTITUTION_KIND_SYSTEM,
    INSTITUTION_LEVEL_SYSTEM,
    INSTITUTION_LICENCE_SYSTEM,
    PRACTITIONER_LICENCE_SYSTEM,
    PRACTITIONER_ROLE_SYSTEM,
)
from registry.models import Department, Institution, Practitioner
from registry.services import DepartmentFields, InstitutionFields, PractitionerFields, row_version

# R4 Practitioner has no element for where a practitioner works (PractitionerRole does, which this
# directory does not serve yet): two platform extensions carry the institution and department.
PRACTITIONER_ORGANIZATION_EXTENSION = "urn:platform:extension:practitioner-organization"
PRACTITIONER_DEPARTMENT_EXTENSION = "urn:platform:extension:practitioner-department"
# GB/T 2260 division of an address; FHIR Address has no element for an administrative division code.
DIVISION_CODE_EXTENSION = "urn:platform:extension:division-code"

ORGANIZATION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/organization-type"
# mCSD marks a facility's Organization and Location with this type (mCSD Facility, ITI-90).
MCSD_TYPE_SYSTEM = "https://profiles.ihe.net/ITI/mCSD/CodeSystem/IHE.mCSD.Organization.Location.Types"
PHYSICAL_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/location-physical-type"
ROLE_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
# ISO 21090 EN.representation (R4 extension registry): ideographic (汉字) or alphabetic (pinyin) name.
NAME_REPRESENTATION_EXTENSION = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"

_KIND_DISPLAY = {"hospital": "医院", "clinic": "基层医疗卫生机构", "pharmacy": "药店"}
_LEVEL_DISPLAY = {"tertiary": "三级", "secondary": "二级", "community": "一级/社区", "unrated": "未定级"}
_ROLE_DISPLAY = {"physician": "医师", "nurse": "护士", "pharmacist": "药师", "technician": "技师"}
# v3 ServiceDeliveryLocationRoleType for the site Location of each kind of institution.
_SITE_TYPE = {"hospital": "HOSP", "clinic": "PC", "pharmacy": "PHARM"}


def _meta(row) -> dict:
    return {"versionId": row_version(row), "lastUpdated": row.updated_at.isoformat(timespec="milliseconds")}


def department_location_id(department: Department) -> str:
    return f"{department.institution.code}-{department.code}"


def _coding(system: str, code: str, display: str | None = None) -> dict:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _concept(system: str, code: str, displays: dict[str, str]) -> dict:
    """A CodeableConcept of one of the registry's own codes, with its Chinese display where known."""
    return {"coding": [_coding(system, code, displays.get(code))], "text": displays.get(code, code)}


def _mcsd_facility() -> dict:
    return {"coding": [_coding(MCSD_TYPE_SYSTEM, "facility", "Facility")]}


def _address(institution: Institution) -> dict:
    address: dict = {
        "extension": [{"url": DIVISION_CODE_EXTENSION, "valueCode": institution.division_code}],
        "use": "work",
        "type": "physical",
    }
    if institution.address:
        address["text"] = institution.address
        address["line"] = [institution.address]
    address["district"] = institution.district
    address["country"] = "CN"
    return address


def _telecom(institution: Institution) -> list[dict]:
    return [{"system": "phone", "value": institution.phone, "use": "work"}] if institution.phone else []


def organization_resource(institution: Institution) -> dict:
    """An institution as an mCSD Facility Organization."""
    resource: dict = {
        "resourceType": "Organization",
        "id": institution.code,
        "meta": _meta(institution),
        "identifier": [
            {"use": "official", "system": INSTITUTION_CODE_SYSTEM, "value": institution.code},
            {
                "use": "official",
                "type": {"text": "执业许可证登记号"},
                "system": INSTITUTION_LICENCE_SYSTEM,
                "value": institution.licence_number,
                "period": {
                    "start": institution.licence_valid_from.isoformat(),
                    "end": institution.licence_valid_until.isoformat(),
                },
            },
        ],
        "active": institution.active,
        "type": [
            _mcsd_facility(),
            {"coding": [_coding(ORGANIZATION_TYPE_SYSTEM, "prov", "Healthcare Provider")]},
            _concept(INSTITUTION_KIND_SYSTEM, institution.kind, _KIND_DISPLAY),
            _concept(INSTITUTION_LEVEL_SYSTEM, institution.level, _LEVEL_DISPLAY),
        ],
        "name": institution.name,
        "address": [_address(institution)],
    }
    if telecom := _telecom(institution):
        resource["telecom"] = telecom
    return resource


def site_location_resource(institution: Institution) -> dict:
    """An institution's own premises as an mCSD Facility Location, managed by its Organization."""
    resource: dict = {
        "resourceType": "Location",
        "id": institution.code,
        "meta": _meta(institution),
        "identifier": [{"use": "official", "system": INSTITUTION_CODE_SYSTEM, "value": institution.code}],
        "status": "active" if institution.active else "inactive",
        "name": institution.name,
        "mode": "instance",
        "type": [
            _mcsd_facility(),
            {"coding": [_coding(ROLE_CODE_SYSTEM, _SITE_TYPE.get(institution.kind, "HOSP"))]},
        ],
        "address": _address(institution),
        "physicalType": {"coding": [_coding(PHYSICAL_TYPE_SYSTEM, "si", "Site")]},
        "managingOrganization": {"reference": f"Organization/{institution.code}"},
    }
    if telecom := _telecom(institution):
        resource["telecom"] = telecom
    return resource


def department_location_resource(department: Department) -> dict:
    """A department (科室) as a Location within its institution's site. ``department.institution``
    should be loaded. physicalType ``wa``: "a section of a medical facility" is the nearest R4 code."""
    code = department.institution.code
    return {
        "resourceType": "Location",
        "id": department_location_id(department),
        "meta": _meta(department),
        "identifier": [{"use": "official", "system": DEPARTMENT_CODE_SYSTEM, "value": department.code}],
        "status": "active" if department.active else "inactive",
        "name": department.name,
        "mode": "instance",
        "physicalType": {"coding": [_coding(PHYSICAL_TYPE_SYSTEM, "wa", "Ward")], "text": "科室"},
        "managingOrganization": {"reference": f"Organization/{code}"},
        "partOf": {"reference": f"Location/{code}"},
    }


def location_resource(row: Institution | Department) -> dict:
    return site_location_resource(row) if isinstance(row, Institution) else department_location_resource(row)


def location_id(row: Institution | Department) -> str:
    return row.code if isinstance(row, Institution) else department_location_id(row)


def _representation(code: str) -> list[dict]:
    return [{"url": NAME_REPRESENTATION_EXTENSION, "valueCode": code}]


def practitioner_resource(practitioner: Practitioner) -> dict:
    """A practitioner; ``institution`` and ``department`` should be loaded. The name in characters and
    its pinyin are two official HumanNames told apart by their representation (IDE, ABC)."""
    licence = {"system": PRACTITIONER_LICENCE_SYSTEM, "value": practitioner.licence_number}
    extension = [
        {
            "url": PRACTITIONER_ORGANIZATION_EXTENSION,
            "valueReference": {"reference": f"Organization/{practitioner.institution.code}"},
        }
    ]
    if practitioner.department is not None:
        extension.append(
            {
                "url": PRACTITIONER_DEPARTMENT_EXTENSION,
                "valueReference": {"reference": f"Location/{department_location_id(practitioner.department)}"},
            }
        )
    names = [{"extension": _representation("IDE"), "use": "official", "text": practitioner.name}]
    if practitioner.name_pinyin:
        names.append({"extension": _representation("ABC"), "use": "official", "text": practitioner.name_pinyin})
    period = {"start": practitioner.valid_from.isoformat()}
    if practitioner.valid_until:
        period["end"] = practitioner.valid_until.isoformat()
    return {
        "resourceType": "Practitioner",
        "id": str(practitioner.pk),
        "meta": _meta(practitioner),
        "extension": extension,
        "identifier": [{"use": "official", **licence}],
        "active": practitioner.active,
        "name": names,
        "qualification": [
            {
                "identifier": [licence],
                "code": _concept(PRACTITIONER_ROLE_SYSTEM, practitioner.role, _ROLE_DISPLAY),
                "period": period,
            }
        ],
    }


# --- FHIR -> directory writes ----------------------------------------------------------


@dataclass
class Parsed:
    """A resource parsed for a directory write: the service's fields, the resource's ``id``, and where
    in the resource each field came from (to name the element when the registry refuses a value)."""

    fields: InstitutionFields | DepartmentFields | PractitionerFields
    id: str | None
    paths: dict[str, str] = field(default_factory=dict)


def _invalid(path: str, message: str, *, code: str = "invalid") -> FHIRError:
    return FHIRError.one(400, code, f"{path}: {message}", expression=path)


def _validated(model, data, resource_type: str):
    if not isinstance(data, dict):
        raise FHIRError.one(400, "structure", f"the request body is not a FHIR {resource_type} (a JSON object)")
    if data.get("resourceType") != resource_type:
        raise _invalid(f"{resource_type}.resourceType", f"expected {resource_type!r} at this endpoint")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise FHIRError(400, validation_issues(resource_type, exc)) from None


def _day(value, path: str) -> dt.date:
    """A FHIR date or dateTime at day precision (a dateTime's own calendar day)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    raise _invalid(path, "needs a full date (YYYY-MM-DD)")


def _code(coding, choices: list[str], path: str) -> str:
    """A coding's code, which must be one of the registry's ``choices``."""
    if coding.code not in choices:
        raise _invalid(path, f"expected one of {', '.join(choices)}", code="code-invalid")
    return coding.code


def _text(value) -> str:
    return (value or "").strip()


def registry_errors(exc: ValidationError, parsed: Parsed, resource_type: str) -> FHIRError:
    """The registry's refusal (field -> messages) as a 400 naming the element each field came from."""
    issues = []
    error_dict = exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
    for name, messages in error_dict.items():
        path = parsed.paths.get(name, resource_type)
        for message in messages:
            issues.append(Issue("invalid", f"{path}: {message}", (path,)))
    return FHIRError(400, issues)


def _reference_id(ref, resource_type: str) -> str | None:
    """The id a literal reference (``Organization/X`` or an absolute URL ending so) points to."""
    text = _text(ref.reference if ref is not None else None)
    head, sep, tail = text.rpartition(f"{resource_type}/")
    if not sep or (head and not head.endswith("/")) or not tail or "/" in tail:
        return None
    return tail


def organization_reference(ref, path: str) -> Institution:
    """The institution a Reference(Organization) points to, by id or by institution-code identifier."""
    code = _reference_id(ref, "Organization")
    identifier = ref.identifier if ref is not None else None
    if code is None and identifier is not None and identifier.system == INSTITUTION_CODE_SYSTEM:
        code = identifier.value or None
    if code is None:
        raise _invalid(path, "expected a reference Organization/{id} or an identifier in " + INSTITUTION_CODE_SYSTEM)
    institution = Institution.objects.filter(code=code.strip().upper()).first()
    if institution is None:
        raise _invalid(path, f"Organization/{code} is not in the directory")
    return institution


def parse_organization(data) -> Parsed:
    """A FHIR Organization as the fields of an institution; 400 naming the element if it cannot be one."""
    org = _validated(FHIROrganization, data, "Organization")
    paths: dict[str, str] = {NON_FIELD_ERRORS: "Organization", "active": "Organization.active"}
    code = licence = None
    for i, ident in enumerate(org.identifier or []):
        if ident.system == INSTITUTION_CODE_SYSTEM and code is None:
            code, paths["code"] = ident, f"Organization.identifier[{i}].value"
        elif ident.system == INSTITUTION_LICENCE_SYSTEM and licence is None:
            licence, paths["licence_number"] = ident, f"Organization.identifier[{i}].value"
            paths["licence_valid_from"] = f"Organization.identifier[{i}].period.start"
            paths["licence_valid_until"] = f"Organization.identifier[{i}].period.end"
    if code is None or not _text(code.value):
        raise _invalid(
            "Organization.identifier",
            f"needs the institution code (identifier with system {INSTITUTION_CODE_SYSTEM})",
            code="required",
        )
    if licence is None or not _text(licence.value):
        raise _invalid(
            "Organization.identifier",
            f"needs the licence number (identifier with system {INSTITUTION_LICENCE_SYSTEM} and its period)",
            code="required",
        )
    period = licence.period
    if period is None or period.start is None or period.end is None:
        raise _invalid(
            paths["licence_number"].removesuffix(".value") + ".period", "needs start and end", code="required"
        )
    valid_from = _day(period.start, paths["licence_valid_from"])
    valid_until = _day(period.end, paths["licence_valid_until"])

    kind = level = None
    for i, concept in enumerate(org.type or []):
        for j, coding in enumerate(concept.coding or []):
            where = f"Organization.type[{i}].coding[{j}].code"
            if coding.system == INSTITUTION_KIND_SYSTEM:
                kind, paths["kind"] = _code(coding, Institution.Kind.values, where), where
            elif coding.system == INSTITUTION_LEVEL_SYSTEM:
                level, paths["level"] = _code(coding, Institution.Level.values, where), where
    if kind is None:
        raise _invalid(
            "Organization.type", f"needs the kind of institution ({INSTITUTION_KIND_SYSTEM})", code="required"
        )
    if level is None:
        if kind != Institution.Kind.PHARMACY:
            raise _invalid("Organization.type", f"needs the level ({INSTITUTION_LEVEL_SYSTEM})", code="required")
        level = Institution.Level.UNRATED  # pharmacies are not graded

    if not _text(org.name):
        raise _invalid("Organization.name", "the institution needs a name", code="required")
    paths["name"] = "Organization.name"

    address = (org.address or [None])[0]
    if address is None or not _text(address.district):
        raise _invalid("Organization.address[0].district", "the institution's district is required", code="required")
    paths.update(
        district="Organization.address[0].district",
        address="Organization.address[0].text",
        division_code=paths["code"],
    )
    # Characters 3-8 of a credit code are the registering authority's division (GB 32100 §4), the
    # institution's own division unless the address says otherwise.
    division = _text(code.value).upper()[2:8]
    for k, ext in enumerate(address.extension or []):
        if ext.url == DIVISION_CODE_EXTENSION:
            division = _text(ext.valueCode or ext.valueString)
            paths["division_code"] = f"Organization.address[0].extension[{k}].valueCode"
    street = _text(address.text) or " ".join(_text(line) for line in address.line or [] if _text(line))

    phone = ""
    for t, telecom in enumerate(org.telecom or []):
        if telecom.system == "phone" and _text(telecom.value):
            phone, paths["phone"] = _text(telecom.value), f"Organization.telecom[{t}].value"
            break

    fields = InstitutionFields(
        code=_text(code.value),
        name=_text(org.name),
        level=level,
        kind=kind,
        division_code=division,
        district=_text(address.district),
        licence_number=_text(licence.value),
        licence_valid_from=valid_from,
        licence_valid_until=valid_until,
        address=street,
        phone=phone,
        active=org.active is not False,
    )
    return Parsed(fields, org.id, paths)


def parse_location(data, *, default_institution: Institution | None) -> Parsed:
    """A FHIR Location as the fields of a department. A site Location is its Organization's: written
    through the Organization, never here. Without ``managingOrganization`` a source system's own
    institution (``default_institution``) is meant."""
    loc = _validated(FHIRLocation, data, "Location")
    paths: dict[str, str] = {NON_FIELD_ERRORS: "Location", "active": "Location.status"}
    code = None
    for i, ident in enumerate(loc.identifier or []):
        if ident.system == DEPARTMENT_CODE_SYSTEM and _text(ident.value):
            code, paths["code"] = _text(ident.value), f"Location.identifier[{i}].value"
            break
        if ident.system == INSTITUTION_CODE_SYSTEM:
            raise _invalid(
                f"Location.identifier[{i}]",
                "an institution's site Location mirrors its Organization: write the Organization",
                code="not-supported",
            )
    if code is None:
        raise _invalid(
            "Location.identifier",
            f"needs the department code (identifier with system {DEPARTMENT_CODE_SYSTEM})",
            code="required",
        )
    if not _text(loc.name):
        raise _invalid("Location.name", "the department needs a name", code="required")
    paths["name"] = "Location.name"
    if loc.managingOrganization is not None:
        institution = organization_reference(loc.managingOrganization, "Location.managingOrganization")
    elif default_institution is not None:
        institution = default_institution
    else:
        raise _invalid("Location.managingOrganization", "name the department's institution", code="required")
    paths["institution"] = "Location.managingOrganization"
    status = loc.status or "active"
    if status not in ("active", "inactive"):
        raise _invalid("Location.status", "expected active or inactive", code="code-invalid")
    fields = DepartmentFields(institution=institution, code=code, name=_text(loc.name), active=status == "active")
    return Parsed(fields, loc.id, paths)


def _representation_of(name) -> str | None:
    for ext in name.extension or []:
        if ext.url == NAME_REPRESENTATION_EXTENSION:
            return ext.valueCode
    return None


def _name_text(name, *, separator: str) -> str:
    if _text(name.text):
        return _text(name.text)
    return separator.join(p for p in [_text(name.family), *(_text(g) for g in name.given or [])] if p)


def parse_practitioner(data, *, default_institution: Institution | None) -> Parsed:
    """A FHIR Practitioner as the fields of a registration; the institution (and department) come from
    the platform extensions, or for a source system default to its own institution."""
    prac = _validated(FHIRPractitioner, data, "Practitioner")
    paths: dict[str, str] = {NON_FIELD_ERRORS: "Practitioner", "active": "Practitioner.active"}
    licence = None
    for i, ident in enumerate(prac.identifier or []):
        if ident.system == PRACTITIONER_LICENCE_SYSTEM and _text(ident.value):
            licence, paths["licence_number"] = _text(ident.value), f"Practitioner.identifier[{i}].value"
            break
    if licence is None:
        raise _invalid(
            "Practitioner.identifier",
            f"needs the licence number (identifier with system {PRACTITIONER_LICENCE_SYSTEM})",
            code="required",
        )

    name = pinyin = ""
    for i, human in enumerate(prac.name or []):
        if _representation_of(human) == "ABC":
            pinyin = pinyin or _name_text(human, separator=" ")
            paths.setdefault("name_pinyin", f"Practitioner.name[{i}]")
        elif not name:
            # Chinese names are written family name first, without a space.
            name, paths["name"] = _name_text(human, separator=""), f"Practitioner.name[{i}]"
    if not name:
        raise _invalid("Practitioner.name", "needs the name in characters (text, or family and given)", code="required")

    role = period = None
    for q, qualification in enumerate(prac.qualification or []):
        for c, coding in enumerate((qualification.code.coding if qualification.code else None) or []):
            if coding.system == PRACTITIONER_ROLE_SYSTEM:
                where = f"Practitioner.qualification[{q}].code.coding[{c}].code"
                role, period = _code(coding, Practitioner.Role.values, where), qualification.period
                paths.update(
                    role=where,
                    valid_from=f"Practitioner.qualification[{q}].period.start",
                    valid_until=f"Practitioner.qualification[{q}].period.end",
                )
                break
        if role:
            break
    if role is None:
        raise _invalid(
            "Practitioner.qualification",
            f"needs the role registered (qualification.code in {PRACTITIONER_ROLE_SYSTEM}) and its period",
            code="required",
        )
    if period is None or period.start is None:
        raise _invalid(paths["valid_from"], "the registration needs a start date", code="required")
    valid_from = _day(period.start, paths["valid_from"])
    valid_until = _day(period.end, paths["valid_until"]) if period.end is not None else None

    institution = department = None
    department_ref = None
    for e, ext in enumerate(prac.extension or []):
        where = f"Practitioner.extension[{e}].valueReference"
        if ext.url == PRACTITIONER_ORGANIZATION_EXTENSION:
            institution = organization_reference(ext.valueReference, where)
            paths["institution"] = where
        elif ext.url == PRACTITIONER_DEPARTMENT_EXTENSION:
            department_ref, paths["department"] = ext.valueReference, where
    if institution is None:
        if default_institution is None:
            raise _invalid(
                "Practitioner.extension",
                f"name the practitioner's institution (extension {PRACTITIONER_ORGANIZATION_EXTENSION})",
                code="required",
            )
        institution = default_institution
        paths["institution"] = "Practitioner"
    if department_ref is not None:
        location_id_ = _reference_id(department_ref, "Location")
        inst_code, _, dept_code = (location_id_ or "").partition("-")
        department = (
            Department.objects.filter(institution__code=inst_code, code=dept_code).first() if dept_code else None
        )
        if department is None:
            raise _invalid(paths["department"], "expected a reference to a department Location in the directory")

    fields = PractitionerFields(
        institution=institution,
        licence_number=licence,
        name=name,
        role=role,
        valid_from=valid_from,
        valid_until=valid_until,
        department=department,
        name_pinyin=pinyin,
        active=prac.active is not False,
    )
    return Parsed(fields, prac.id, paths)
