"""Who is asking, and what they may do — one answer for every door (the FHIR API, the HL7 v2 listener, the
viewer, a Celery task applying a feed).

A ``Caller`` is a registered source system (a hospital's HIS, LIS, PACS or EMR), optionally limited by the
scopes of the OAuth2 token it presented, or a staff user. The rules (``../shared/DESIGN.md``, "Who may do what";
the README's table says the same):

- scopes: a type may be read or written only if the source system's allow-list in the registry
  (``SourceSystem.fhir_scopes``) and the token's scopes both grant it (SMART ``system/<type>.<read|write>``);
  what a scope does not grant is neither done nor returned;
- a source system changes (updates, replaces, deletes) only what that very source system wrote, and a source
  Patient only under its institution's own assigning authorities;
- it may refer to what its institution's source systems wrote, to its own patients, and to the directory;
- a clinician (a viewer user tied to a registry Practitioner, ``practitioner``) reads every type and writes
  nothing; they open the record of a resident their institution knows (``knows``), any other only with a
  stated reason, which the audit records;
- a staff user may do all of it, attributed to them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property

ACTIONS = ("read", "write")


@functools.lru_cache(maxsize=512)
def scopes_granting(resource_type: str, action: str) -> frozenset[str]:
    """Every scope that allows ``action`` ("read" or "write") on ``resource_type``. Kept per type and action:
    a Bundle asks once for each of its entries.

    ``system/Patient.read``, ``system/Patient.*``, ``system/*.read`` and
    ``system/*.*`` all allow reading a Patient (SMART App Launch v1, "Scopes
    for requesting clinical data": ``*`` for every type, or both actions).
    """
    if action not in ACTIONS:
        raise ValueError(f"action: expected 'read' or 'write', got {action!r}")
    return frozenset(f"system/{t}.{a}" for t in (resource_type, "*") for a in (action, "*"))


def source_scopes(source) -> frozenset[str] | None:
    """The scopes a source system is allowed (its registry allow-list), or None when it is not limited."""
    allowed = frozenset(source.fhir_scopes.split()) if source is not None else frozenset()
    return allowed or None


@dataclass(eq=False)
class Caller:
    """Who asks: a source system (``source``; ``token_scopes`` when it came with an OAuth2 token, None for HTTP
    Basic or its MLLP sender identity), a clinician (``practitioner``, a registry Practitioner) or a staff user
    (neither). ``actor`` names them in provenance, the access log and the audit."""

    source: object | None
    actor: str
    token_scopes: frozenset[str] | None = None
    practitioner: object | None = None

    @property
    def is_staff(self) -> bool:
        return self.source is None and self.practitioner is None

    @property
    def is_clinician(self) -> bool:
        return self.practitioner is not None

    @property
    def institution(self):
        """The institution this caller speaks for (None: staff)."""
        if self.source is not None:
            return self.source.institution
        if self.practitioner is not None:
            return self.practitioner.institution
        return None

    @cached_property
    def allowed_scopes(self) -> frozenset[str] | None:
        return source_scopes(self.source)

    def may(self, resource_type: str, action: str) -> bool:
        """May this caller ``action`` ("read" or "write") resources of ``resource_type``?"""
        wanted = scopes_granting(resource_type, action)  # validates ``action`` whoever asks
        if self.practitioner is not None:
            return action == "read"  # a clinician reads (the viewer), and writes nothing
        if self.allowed_scopes is not None and self.allowed_scopes.isdisjoint(wanted):
            return False
        return self.token_scopes is None or not self.token_scopes.isdisjoint(wanted)

    def may_read(self, resource_type: str) -> bool:
        return self.may(resource_type, "read")

    def readable(self, resource_types) -> frozenset[str]:
        """Those of ``resource_types`` this caller may read: nothing else is returned to it."""
        return frozenset(t for t in resource_types if self.may_read(t))

    @cached_property
    def authorities(self) -> frozenset[str]:
        """The assigning authorities whose local ids (MRNs) this source system's institution issues."""
        if self.source is not None:
            return frozenset(a for a in (self.source.sending_facility, self.source.institution.code) if a)
        if self.practitioner is not None:
            from registry.models import SourceSystem

            institution = self.practitioner.institution
            facilities = SourceSystem.objects.filter(institution=institution).values_list("sending_facility", flat=True)
            return frozenset(a for a in (institution.code, *facilities) if a)
        return frozenset()

    @cached_property
    def institution_sources(self) -> frozenset[int]:
        """The primary keys of every source system of this caller's institution (its own included)."""
        institution = self.institution
        if institution is None:
            return frozenset()
        from registry.selectors import source_system_ids_of_institution

        return frozenset(source_system_ids_of_institution(institution.pk))

    def knows(self, identities) -> bool:
        """Does this caller's institution know the resident these MPI identities (all of one person) stand for —
        did one of its feeds send them, or is one an MRN it issued? Staff know everyone."""
        if self.is_staff:
            return True
        return any(
            i.source_id in self.institution_sources or i.assigning_authority in self.authorities for i in identities
        )

    def owns_identity(self, identity) -> bool:
        """Is this MPI identity (a source Patient) one of this caller's institution's patients?"""
        if self.is_staff:
            return True
        if self.source is None:
            return False  # a clinician writes nothing
        return identity.source_id == self.source.pk or identity.assigning_authority in self.authorities

    def may_change(self, source_id: int | None) -> bool:
        """May this caller update, replace or delete what the source system ``source_id`` wrote (None: a staff
        member)? Only the very source system that wrote it (or staff)."""
        if self.is_staff:
            return True
        return self.source is not None and source_id == self.source.pk

    def may_refer_to(self, source_id: int | None) -> bool:
        """May this caller's resources refer to what ``source_id`` wrote? What its own institution wrote."""
        if self.is_staff:
            return True
        return self.source is not None and source_id in self.institution_sources
