"""Patient: the MPI's person (golden record) as a FHIR R4 Patient (a FHIR Patient as MPI demographics is the
write corridor's: ``healthplatform.ingest.patients``)."""

from __future__ import annotations

import re

from healthplatform.ingest.patients import FHIR_GENDERS
from mpi.models import Person
from mpi.selectors import PERSON_SYSTEM, identifier_systems, system_of_authority

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
# HL7 v2 table 0203 identifier types where one fits; the permits and the
# health card have no code of their own there, so they carry text only.
_IDENTIFIER_TYPES = {
    "resident_id": {"coding": [{"system": V2_0203, "code": "NI"}], "text": "居民身份证号码"},
    "health_card": {"text": "居民健康卡号"},
    "passport": {"coding": [{"system": V2_0203, "code": "PPN"}], "text": "护照号码"},
    "hk_macau_permit": {"text": "港澳居民来往内地通行证"},
    "taiwan_permit": {"text": "台湾居民来往大陆通行证"},
    "foreign_permanent_resident": {"coding": [{"system": V2_0203, "code": "PRC"}], "text": "外国人永久居留身份证"},
}
_MR_TYPE = {"coding": [{"system": V2_0203, "code": "MR"}], "text": "病案号/就诊号"}
_MOBILE_RE = re.compile(r"^(\+?86)?1\d{10}$")


def _document_identifiers(person: Person) -> list[dict]:
    """The person's trusted, current identity documents, once each, in a fixed order."""
    systems = identifier_systems()
    order = {kind: i for i, kind in enumerate(systems)}
    seen: dict[tuple[str, str], None] = {}
    for identity in person.identities.all():
        for ident in identity.identifiers.all():
            if ident.trusted and ident.current and ident.kind in systems:
                seen[(ident.kind, ident.value)] = None
    out = []
    for kind, value in sorted(seen, key=lambda kv: (order[kv[0]], kv[1])):
        entry = {"use": "official", "type": _IDENTIFIER_TYPES.get(kind, {"text": kind})}
        out.append({**entry, "system": systems[kind], "value": value})
    return out


def _mrn_identifiers(person: Person) -> list[dict]:
    return [
        {
            "use": "usual",
            "type": _MR_TYPE,
            "system": system_of_authority(identity.assigning_authority),
            "value": identity.local_id,
        }
        for identity in person.identities.all()
    ]


# Who reported a golden contact detail (mpi/services/links.py, survivorship): the institution (the directory's
# Organization, whose id is its unified social credit code), or the assigning authority when no institution's
# system sent it (the population register).
REPORTED_BY = "urn:platform:fhir:StructureDefinition/reported-by"


def _phone(value: str) -> dict:
    phone = {"system": "phone", "value": value}
    if _MOBILE_RE.match(re.sub(r"[\s\-]", "", value)):
        phone["use"] = "mobile"
    return phone


def _reported(current: str, held: dict | None) -> list[tuple[str, dict | None]]:
    """The golden value with who reported it, then the value it replaced (a change by one institution is
    visible to every other as such, not silent)."""
    out: list[tuple[str, dict | None]] = [(current, held)]
    previous = (held or {}).get("previous")
    if previous and previous.get("value") and previous["value"] != current:
        out.append((previous["value"], {**previous, "since": None}))
    return out


def _with_provenance(element: dict, reported: dict | None) -> dict:
    """A ContactPoint or Address with its ``period`` (R4: when it was in use: since the report made it the
    golden value, until it was replaced) and the reporter as an extension."""
    if not reported:
        return element
    period = {k: reported[v] for k, v in (("start", "since"), ("end", "until")) if reported.get(v)}
    if period:
        element["period"] = period
    if reported.get("institution"):
        reporter = {
            "reference": f"Organization/{reported['institution']}",
            "display": reported.get("institution_name") or reported["institution"],
        }
        element["extension"] = [{"url": REPORTED_BY, "valueReference": reporter}]
    elif reported.get("authority"):
        element["extension"] = [{"url": REPORTED_BY, "valueReference": {"display": reported["authority"]}}]
    return element


def _human_name(person: Person) -> dict | None:
    """The golden name; family and given only when a source sent them split (never guessed)."""
    if not person.name:
        return None
    name: dict = {"use": "official", "text": person.name}
    for identity in person.identities.all():
        received = identity.received or {}
        family, given = received.get("family_name"), received.get("given_name")
        if identity.name == person.name and (family or given):
            if family:
                name["family"] = family
            if given:
                name["given"] = given.split()
            break
    return name


def patient_resource(person: Person, *, replaced_by: Person | None = None) -> dict:
    """A person as a FHIR Patient. ``person.identities`` (with ``identifiers``) should be prefetched.

    A merged person is answered as ``active: false`` with a ``replaced-by``
    link to the survivor (R4 patient.html#links); its identities have moved there.
    """
    resource: dict = {
        "resourceType": "Patient",
        "id": str(person.uuid),
        "meta": {"lastUpdated": person.updated_at.isoformat(timespec="milliseconds")},
        "identifier": [
            {"system": PERSON_SYSTEM, "value": str(person.uuid)},
            *_document_identifiers(person),
            *_mrn_identifiers(person),
        ],
        "active": person.status == Person.Status.ACTIVE,
    }
    name = _human_name(person)
    if name:
        resource["name"] = [name]
    provenance = person.provenance or {}
    if person.phone:
        resource["telecom"] = [
            _with_provenance(_phone(value), reported)
            for value, reported in _reported(person.phone, provenance.get("phone"))
        ]
    if person.sex in FHIR_GENDERS:
        resource["gender"] = person.sex
    if person.birth_date:
        resource["birthDate"] = person.birth_date.isoformat()
    if person.address:
        resource["address"] = [
            _with_provenance({"text": value}, reported)
            for value, reported in _reported(person.address, provenance.get("address"))
        ]
    links = []
    if replaced_by is not None:
        links.append({"other": {"reference": f"Patient/{replaced_by.uuid}"}, "type": "replaced-by"})
    # The source Patients (identities) behind the golden record, and the persons merged into it
    # (R4 patient.html#links: seealso, replaces).
    links += [{"other": {"reference": f"Patient/{i.uuid}"}, "type": "seealso"} for i in person.identities.all()]
    links += [
        {"other": {"reference": f"Patient/{merged.uuid}"}, "type": "replaces"} for merged in person.merged_persons.all()
    ]
    if links:
        resource["link"] = links
    return resource
