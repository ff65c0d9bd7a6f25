"""References in incoming resources: rewritten to what they name, and checked before anything is stored.

R4 http.html#trules: in a transaction, a reference to another entry (its ``fullUrl``, usually ``urn:uuid:…``)
becomes the id the server gave that entry, and a conditional reference (``Practitioner?identifier=…``) becomes
the one resource it matches — no match or several is an error. Conditional references to the archive match
only the writer's own source's resources (business identifiers are per source); to the directory, the registry
(Organization by institution code or licence, Practitioner by registration number).

A literal reference (``Encounter/<id>``, relative, or absolute with a type this server serves) must name
something that exists here, and something the writer may refer to (``Caller.may_refer_to``: what its own
institution sent, its own patients, any directory entry). A relative reference to a type this server does not
store (``Medication/x``) cannot resolve and is refused: send such a resource contained (``#id``) instead.
External absolute references (another server's ``https://…/Medication/x``) are kept as sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from ehr.errors import ResourceError
from ehr.indexing import SPECS, reference_target
from ehr.models import Resource
from ehr.selectors import conditional_matches, identifier_criteria
from emr.selectors import document_sources
from healthplatform.errors import PlatformError, reference_not_found
from healthplatform.ingest.entries import DOCUMENT_TYPES
from healthplatform.ingest.patients import patient_by_criteria, patient_identity
from mpi import selectors as mpi
from registry import selectors as registry

DIRECTORY_TYPES = ("Organization", "Practitioner", "Location")
# What a literal reference may name here: the archive's types, the documents, the directory.
SERVED_TYPES = frozenset(SPECS) | frozenset(DOCUMENT_TYPES) | frozenset(DIRECTORY_TYPES)


@dataclass
class Literal:
    """A literal reference met while rewriting: where it is (``node[key]``, and as an element path) and what it
    names."""

    where: str
    resource_type: str
    fhir_id: str
    node: dict
    key: str


def references_rewrite(run, node, *, path: str) -> None:
    """Rewrites, in place, every ``reference`` in ``node`` that names a Bundle entry or is conditional, and
    notes every literal one for ``references_check``."""
    if isinstance(node, (dict, list)):
        _rewrite(run, node, (path,))


# No FHIR resource a hospital sends nests this deep; deeper nesting is refused, not walked (and stored bodies are
# serialised by orjson, which stops at 254 levels).
MAX_DEPTH = 100


def _rewrite(run, node, steps: tuple) -> None:
    # ``steps`` is the element path in pieces, joined only when needed: most nodes hold no reference.
    if len(steps) > MAX_DEPTH:
        where = "".join(steps[:4])
        raise PlatformError.one(
            400, "structure", f"{where}: nested more than {MAX_DEPTH} levels deep", expression=where
        )
    if isinstance(node, list):
        for i, child in enumerate(node):
            if isinstance(child, (dict, list)):
                _rewrite(run, child, (*steps, f"[{i}]"))
        return
    for key, child in node.items():
        if key == "reference" and isinstance(child, str):
            if child in run.local:
                run.rewrite(node, key, run.local[child])
            elif child in run.patients:  # the fact's patient, resolved already: named by the identity's own id
                if child != (canonical := f"Patient/{run.patients[child].uuid}"):
                    run.rewrite(node, key, canonical)
            elif child.startswith(("urn:uuid:", "urn:oid:")):
                raise reference_not_found("".join(steps) + ".reference", f"{child} is not an entry of this Bundle")
            elif "?" in child:
                # Resolved once per request: the same Practitioner?identifier=… recurs on every encounter.
                run.local[child] = conditional_reference(run, child, path="".join(steps) + ".reference")
                run.rewrite(node, key, run.local[child])
            elif child not in run.checked:
                _literal(run, node, key, "".join(steps) + ".reference")
        elif isinstance(child, (dict, list)):
            _rewrite(run, child, (*steps, f".{key}"))


def _literal(run, node: dict, key: str, where: str) -> None:
    reference = node[key]
    if reference.startswith("#"):
        return  # a contained resource (R4 references.html#contained)
    target = reference_target({"reference": reference})
    absolute = "://" in reference
    if target is None:
        if absolute:
            return  # another server's resource, by an address that names no type and id we could check
        raise PlatformError.one(
            400, "invalid", f"{where}: expected Type/id, an absolute URL or #contained", expression=where
        )
    if target[0] not in SERVED_TYPES:
        if absolute:
            return  # another server's resource of a type this one does not hold
        raise PlatformError.one(
            422,
            "not-supported",
            f"{where}: this server stores no {target[0]}, so {target[0]}/{target[1]} cannot resolve here; "
            "send it as a contained resource (#id) or name it by identifier or display",
            expression=where,
        )
    run.literals.append(Literal(where, target[0], target[1], node, key))
    if target[0] not in ("Patient", *DOCUMENT_TYPES):  # those are rewritten to their canonical id when checked
        run.checked.add(reference)


def conditional_reference(run, reference: str, *, path: str) -> str:
    """The ``Type/id`` a conditional reference resolves to (exactly one match), else a refusal."""
    resource_type, _, criteria = reference.partition("?")
    if resource_type == "Patient":
        identity = patient_by_criteria(criteria, path=path)
        if identity is None:
            raise reference_not_found(path, f"no Patient matches {reference}")
        patient_identity(run.caller, f"Patient/{identity.uuid}", path=path)  # one of the writer's patients
        return f"Patient/{identity.uuid}"
    if resource_type in ("Organization", "Practitioner"):
        found = identifier_criteria(criteria)
        target = None
        if found is not None and resource_type == "Organization":
            target = registry.organization_code_by_identifier(*found)
        elif found is not None:
            target = registry.practitioner_id_by_identifier(*found)
        if target is None:
            raise reference_not_found(path, f"no {resource_type} matches {reference}")
        return f"{resource_type}/{target}"
    if resource_type not in SPECS:
        raise PlatformError.one(
            400,
            "not-supported",
            f"{path}: conditional references to {resource_type} are not resolved here",
            expression=path,
        )
    try:
        matches = conditional_matches(resource_type, criteria, source_id=run.caller_source_id)
    except ResourceError as exc:
        raise PlatformError.one(exc.status, exc.code, f"{path}: {exc.message}", expression=path) from None
    message = f"{reference} matches {len(matches)} of your resources (exactly one is needed)"
    if not matches:
        raise reference_not_found(path, message)
    if len(matches) > 1:
        raise PlatformError.one(412, "multiple-matches", f"{path}: {message}", expression=path)
    return f"{resource_type}/{matches[0].fhir_id}"


def references_check(run) -> None:
    """Checks every literal reference noted so far: it names something stored here that the writer may refer
    to. A handful of queries for the whole request, one per kind of target."""
    literals, run.literals = run.literals, []
    if not literals:
        return
    by_type: dict[str, list[Literal]] = {}
    for literal in literals:
        by_type.setdefault(literal.resource_type, []).append(literal)
    caller = run.caller
    for resource_type, found in by_type.items():
        if resource_type == "Patient":
            _patients_check(run, found)
        elif resource_type in SPECS:
            _archive_check(caller, resource_type, found)
        elif resource_type in DOCUMENT_TYPES:
            sources = document_sources({f.fhir_id for f in found})
            for f in found:
                known = sources.get(f.fhir_id)
                if known is None:
                    raise reference_not_found(f.where, f"{resource_type}/{f.fhir_id} is not a stored document")
                if not caller.may_refer_to(known[1]):
                    raise _foreign(f)
                if f.node[f.key] != (canonical := f"{resource_type}/{known[0]}"):
                    run.rewrite(f.node, f.key, canonical)
        else:
            _directory_check(resource_type, found)


def _foreign(f: Literal) -> PlatformError:
    return PlatformError.one(
        403,
        "forbidden",
        f"{f.where}: {f.resource_type}/{f.fhir_id} was sent by another institution; a resource refers only to "
        "what its own institution sent (and to the directory)",
        expression=f.where,
    )


def _patients_check(run, found: list[Literal]) -> None:
    for f in found:
        key = f"Patient/{f.fhir_id}"
        if key not in run.patients:
            run.patients[key] = patient_identity(run.caller, key, path=f.where)
        if f.node[f.key] != (canonical := f"Patient/{run.patients[key].uuid}"):
            run.rewrite(f.node, f.key, canonical)


def _archive_check(caller, resource_type: str, found: list[Literal]) -> None:
    rows = {
        fhir_id: (source_id, identity_id, deleted)
        for fhir_id, source_id, identity_id, deleted in Resource.objects.filter(
            resource_type=resource_type, fhir_id__in={f.fhir_id for f in found}
        ).values_list("fhir_id", "source_id", "identity_id", "deleted")
    }
    staff_written = {row[1] for row in rows.values() if row[0] is None and row[1] is not None}
    owned = {}
    if staff_written and not caller.is_staff:
        owned = {i.pk: caller.owns_identity(i) for i in mpi.identities_by_pk(staff_written).values()}
    for f in found:
        row = rows.get(f.fhir_id)
        if row is None:
            raise reference_not_found(f.where, f"{resource_type}/{f.fhir_id} is not known")
        source_id, identity_id, deleted = row
        if deleted:
            raise reference_not_found(f.where, f"{resource_type}/{f.fhir_id} was deleted")
        # What a staff member entered about one of the writer's own patients is the writer's to refer to.
        if not (caller.may_refer_to(source_id) or (source_id is None and owned.get(identity_id))):
            raise _foreign(f)


def _directory_check(resource_type: str, found: list[Literal]) -> None:
    ids = {f.fhir_id for f in found}
    if resource_type == "Organization":
        known = registry.institution_codes_existing(ids)
    elif resource_type == "Practitioner":
        # Practitioner ids are primary keys: anything but a number that fits one names no practitioner.
        numbers = {int(i) for i in ids if i.isascii() and i.isdigit() and len(i) <= 18}
        known = {str(pk) for pk in registry.practitioner_ids_existing(numbers)}
    else:  # Location: an institution's site (its code) or a department ("<institution code>-<department code>")
        sites = registry.institution_codes_existing(ids)
        pairs = {tuple(i.split("-", 1)) for i in ids if "-" in i}
        known = sites | {f"{a}-{b}" for a, b in registry.department_keys_existing(pairs)}
    for f in found:
        if f.fhir_id not in known:
            raise reference_not_found(f.where, f"{resource_type}/{f.fhir_id} is not in the directory")
