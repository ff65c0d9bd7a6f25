"""The MPI's writes: register, link, unlink, merge, unmerge, review decisions and re-matching.

Each service is one transaction and leaves a ``LinkEvent``. Manual decisions
(links, unlinks, merges, review answers) are marked ``manual`` and no
automatic step moves such an identity again; do-not-link decisions are checked
by every operation that can put two identities under one person.

- ``registration``: ``identity_register``, ``identity_register_batch``;
- ``manual``: ``identity_link``, ``identity_unlink``, ``person_merge``, ``person_unmerge`` and the review
  decisions ``review_accept``, ``review_merge``, ``review_reject``;
- ``rematch``: ``rematch_start``, ``rematch_step``;
- ``links``: what they share (the golden record, moving an identity, review items).

What to link is decided by ``mpi.linkage``, which only reads. Callers import from ``mpi.services``.
"""

from mpi.services.links import SYSTEM_ACTOR, golden_values, person_refresh
from mpi.services.manual import (
    MPIError,
    identity_link,
    identity_unlink,
    person_merge,
    person_unmerge,
    review_accept,
    review_merge,
    review_reject,
)
from mpi.services.registration import (
    Registration,
    RegistrationRequest,
    identity_fields,
    identity_register,
    identity_register_batch,
    registration_confirmed,
)
from mpi.services.rematch import rematch_start, rematch_step

__all__ = [
    "SYSTEM_ACTOR",
    "MPIError",
    "Registration",
    "RegistrationRequest",
    "golden_values",
    "identity_fields",
    "identity_link",
    "identity_register",
    "identity_register_batch",
    "identity_unlink",
    "person_merge",
    "person_refresh",
    "person_unmerge",
    "registration_confirmed",
    "rematch_start",
    "rematch_step",
    "review_accept",
    "review_merge",
    "review_reject",
]
