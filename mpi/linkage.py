"""The MPI's linkage rules: which persons a record may be, and whether it links to one of them.

These are reads: they find and compare candidates, count how rare a name or a phone is in the index, weigh
a record against a whole person (complete linkage, twins, do-not-link decisions) and say which person to
link to and which to put in front of reviewers. They write nothing; ``mpi.services`` writes what they
decide, and ``mpi.selectors`` answers PDQm $match with the same candidates.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import Q

from mpi.demographics import Profile, blocking_keys, key_hash
from mpi.matching import NAME_CLOSE, Comparison, compare, given_names_differ, thresholds
from mpi.models import DoNotLink, Identity, MatchKey

# The most candidate identities compared per registration (those sharing most blocking keys first).
CANDIDATE_LIMIT = 200


@dataclass
class Candidate:
    """A person an identity may belong to, with the best comparison against that person's identities."""

    person_id: int
    comparison: Comparison
    identity_id: int


# --- candidates --------------------------------------------------------------


def candidates_find(
    profile: Profile, *, exclude_identity_ids: Iterable[int] = (), complete: bool = False
) -> list[Candidate]:
    """Persons that may be the resident of ``profile``, best first, from every blocking pass at once.

    Identities sharing two or more blocking keys with the record are compared first; those sharing only
    one (a birth date alone, say) only when the first round found no corroborated automatic link, or when
    ``complete`` asks for every candidate (PDQm $match). Most registrations carry a number that agrees,
    and then the one-key tail, the bulk of the candidates, is never parsed.
    """
    hashes = [key_hash(k) for k in blocking_keys(profile, query=True)]
    if not hashes:
        return []
    excluded = set(exclude_identity_ids)
    best: dict[int, Candidate] = {}
    _compare_into(best, profile, _candidate_rows(hashes, excluded, strong=True))
    auto = thresholds()["auto_link"]
    decided = any(c.comparison.corroborated and c.comparison.score >= auto for c in best.values())
    if complete or not decided:
        _compare_into(best, profile, _candidate_rows(hashes, excluded, strong=False))
    if any(c.comparison.rare_name_eligible for c in best.values()) and name_is_rare(profile):
        for c in best.values():
            if c.comparison.rare_name_eligible and _other_spelling_rare(profile, c.comparison):
                c.comparison.corroborated = True
                c.comparison.rare_name = True
    return sorted(best.values(), key=lambda c: (-c.comparison.score, c.person_id))


def _candidate_rows(hashes: list[int], excluded: set[int], *, strong: bool) -> list[tuple]:
    """(identity id, person id, profile as JSON text) of the identities sharing two or more keys
    (``strong``) or exactly one, most shared first. One round trip each: this is the hot path of every
    registration, hence SQL rather than two ORM queries."""
    having = "COUNT(*) >= 2" if strong else "COUNT(*) = 1"
    # Only table names (from the models) and the fixed HAVING clause are formatted in; values are parameters.
    sql = (
        f"SELECT i.id, i.person_id, CAST(i.profile AS TEXT) FROM (SELECT identity_id, COUNT(*) AS n "  # noqa: S608
        f"FROM {MatchKey._meta.db_table} WHERE key IN ({', '.join(['%s'] * len(hashes))}) "
        f"GROUP BY identity_id HAVING {having} ORDER BY n DESC, identity_id LIMIT %s) k "
        f"JOIN {Identity._meta.db_table} i ON i.id = k.identity_id"
    )
    with connection.cursor() as cur:
        cur.execute(sql, [*hashes, CANDIDATE_LIMIT + len(excluded)])
        return [r for r in cur.fetchall() if r[0] not in excluded]


def _compare_into(best: dict[int, Candidate], profile: Profile, rows: list[tuple]) -> None:
    for identity_id, person_id, stored in rows:
        comparison = compare(profile, Profile.from_json(json.loads(stored)))
        current = best.get(person_id)
        if current is None or comparison.score > current.comparison.score:
            best[person_id] = Candidate(person_id, comparison, identity_id)


# The whole-name rule (mpi.matching) asks the name to be uncommon, not rare: its middle name, spelled out on
# both records, already divides the namesakes that the first and family name leave.
WHOLE_NAME_RARITY = 4


def name_is_rare(profile: Profile, *, factor: int = 1) -> bool:
    """At most ``RARE_NAME_MAX`` (times ``factor``) identities in the index sound like this name (see
    mpi.matching)."""
    return bool(profile.sounds) and sounds_rare(profile.sounds, factor=factor)


def sounds_rare(sounds: Iterable[str], *, factor: int = 1) -> bool:
    """Each of these name sounds is held by at most ``RARE_NAME_MAX`` (times ``factor``) identities."""
    from mpi.matching import RARE_NAME_MAX

    limit = getattr(settings, "MPI_RARE_NAME_MAX", RARE_NAME_MAX) * factor
    return all(_key_held_at_most(f"n:{s}", limit) for s in sounds)


def _other_spelling_rare(profile: Profile, comparison: Comparison) -> bool:
    """The other record's name sounds are rare too (a name one slip off); the record's own were counted by
    ``name_is_rare``."""
    return sounds_rare(set(comparison.rare_name_sounds) - set(profile.sounds))


def _key_held_at_most(key: str, limit: int) -> bool:
    """At most ``limit`` identities hold this blocking key (counting stops at ``limit + 1``)."""
    return MatchKey.objects.filter(key=key_hash(key))[: limit + 1].count() <= limit


# A phone held by more identities than this is an institution's (a care home, a hall of residence), not a
# household's: it does not stand in for the family name (mpi.matching, the surname-change rule).
PHONE_HOUSEHOLD_MAX = 8


def phone_private(profile: Profile) -> bool:
    """At most ``PHONE_HOUSEHOLD_MAX`` identities in the index give this phone."""
    return bool(profile.phone) and _key_held_at_most(f"ph:{profile.phone}", PHONE_HOUSEHOLD_MAX)


def person_verdict(profile: Profile, person_id: int, exclude_ids: set[int], authority: str) -> Comparison | None:
    """The record compared with a whole person: the best comparison over all its identities, or None if
    any identity conflicts with the record.

    Complete linkage: no identity of the person may conflict, so a chain of records that each resemble
    the next (Katherine, Catherine Patricia…) never joins two residents. The person's identities pool
    their contact fields: a record agreeing on name and birth date with one identity and on the phone
    with another is corroborated. A rare name corroborates an exact name and birth date on its own.
    """
    rows = (
        Identity.objects.filter(person_id=person_id)
        .exclude(id__in=exclude_ids)
        .values_list("profile", "assigning_authority", "link_kind")
    )
    parsed = [(Profile.from_json(p), a, kind) for p, a, kind in rows]
    records = [(compare(profile, p), p, a, kind) for p, a, kind in parsed]
    comparisons = [c for c, _, _, _ in records]
    if not comparisons or any(c.conflict for c in comparisons):
        return None
    # A corroborated comparison first: "Robert Clark" agrees in full with the person's "Robert Clark" even
    # when its "Robert Steven Clark" scores as high.
    best = max(comparisons, key=lambda c: (c.corroborated, c.score))
    if best.without_birth_date and any(c.levels.get("birth_date") == "disagree" for c in comparisons):
        # The person is known with another birth date than the record: a same-named relative, maybe.
        best.corroborated = False
    if best.whole_name and not name_is_rare(profile, factor=WHOLE_NAME_RARITY):
        # "Mary Ann Smith" born on one day is not one resident in a city: the spelled-out middle name stands
        # in for a contact only when the first and family names are uncommon in the index.
        best.corroborated = best.whole_name = False
        best.needs_contact = True  # another identity's phone or address may still corroborate
    if best.surname_change and not phone_private(profile):
        # The given name and a phone many residents give (a care home's, a student hall's): two Marys born
        # on one day may live there. Reviewers decide.
        best.corroborated = best.surname_change = False
    if not best.corroborated:
        if best.needs_contact and any(c.contact_agrees for c in comparisons):
            best.corroborated = best.contact_from_person = True
        elif best.rare_name_eligible and name_is_rare(profile) and _other_spelling_rare(profile, best):
            best.corroborated = best.rare_name = True
    if (
        authority
        and best.corroborated
        # A newborn's placeholder often carries the mother's card: an agreeing card says nothing of which twin.
        and (not best.identifier_agrees or profile.placeholder)
        and _twin_at(profile, authority, records)
    ):
        # The person already has a record under another local id of this very authority with another given
        # name that only resembles this one: one hospital registering twins born there on one day (Kathryn
        # and Katherine, one phone, one address) looks exactly like it. Reviewers decide; a false link would
        # mix two children's records. Checked last: a contact pooled from the person's other records or the
        # rare-name rule must not get past it.
        best.corroborated = False
        best.same_authority = True
    return best


def _twin_at(profile: Profile, authority: str, records: list[tuple[Comparison, Profile, str, str]]) -> bool:
    """The person's records of ``authority`` hold a given name that only resembles the record's, none holds
    its very name, and no reviewer joined the person (then the spellings are known to be one resident).
    ``records``: each identity's comparison with the record, its profile, authority and link kind."""
    same = [(c, p) for c, p, a, _ in records if a == authority]
    if any(kind == Identity.LinkKind.MANUAL for _, _, _, kind in records):
        return False
    if profile.placeholder and any(p.placeholder for _, p in same):
        # Two placeholders from one hospital under two local ids ("BABY GIRL THOMPSON" twice): twins as likely
        # as one baby registered twice.
        return True
    return any(given_names_differ(profile, p) for _, p in same) and not any(
        c.levels.get("name") == "exact" for c, _ in same
    )


def _blocked_person_ids(identity_id: int | None) -> set[int]:
    """Persons holding an identity that a do-not-link decision separates from this one."""
    if identity_id is None:
        return set()
    others = DoNotLink.objects.filter(Q(identity_a_id=identity_id) | Q(identity_b_id=identity_id)).values_list(
        "identity_a_id", "identity_b_id"
    )
    other_ids = {a if b == identity_id else b for a, b in others}
    if not other_ids:
        return set()
    return set(Identity.objects.filter(id__in=other_ids).values_list("person_id", flat=True))


def dnl_crossed(identity_ids_a: Iterable[int], identity_ids_b: Iterable[int]) -> bool:
    """A do-not-link decision separates an identity of the first set from one of the second."""
    a, b = set(identity_ids_a), set(identity_ids_b)
    if not a or not b:
        return False
    return DoNotLink.objects.filter(
        Q(identity_a_id__in=a, identity_b_id__in=b) | Q(identity_a_id__in=b, identity_b_id__in=a)
    ).exists()


# --- the link decision -------------------------------------------------------


def decide(
    identity_id: int | None, profile: Profile, *, authority: str, exclude: Iterable[int] = ()
) -> tuple[Candidate | None, list[Candidate]]:
    """The person to auto-link to (or None), and the candidates worth a review."""
    blocked = _blocked_person_ids(identity_id)
    exclude_ids = set(exclude) | ({identity_id} if identity_id else set())
    found = [c for c in candidates_find(profile, exclude_identity_ids=exclude_ids) if c.person_id not in blocked]
    auto, chosen = thresholds()["auto_link"], None
    for i, c in enumerate(found):
        if c.comparison.score < auto:
            break  # best first: no later candidate reaches the band
        verdict = person_verdict(profile, c.person_id, exclude_ids, authority)
        if verdict is not None and verdict.band() == "auto_link":
            chosen = Candidate(c.person_id, verdict, c.identity_id)
            break
        if verdict is not None and verdict.same_authority:
            found[i] = Candidate(c.person_id, verdict, c.identity_id)  # reviewers see why it did not link
    chosen_id = chosen.person_id if chosen else None
    review = [c for c in found if c.person_id != chosen_id and c.comparison.band() in ("auto_link", "review")]
    return chosen, review


def second_links(
    profile: Profile, chosen: Candidate, others: list[Candidate], authority: str
) -> tuple[list[Candidate], bool]:
    """Other persons the record would also link to automatically, and whether that is ambiguous.

    Such a person is the same resident registered twice before this record tied them together (a
    bridge, merged in afterwards) when no do-not-link decision separates the two persons and no
    identity of one conflicts with any identity of the other. If it conflicts (twins, one using the
    other's number), the record cannot say which of the two it is: nothing links automatically.
    A bridge needs evidence beyond an exact name and birth date (the rare-name rule), which would tie
    two namesakes together.
    """
    auto, bridges = thresholds()["auto_link"], []
    chosen_levels = chosen.comparison.levels
    if chosen.comparison.without_birth_date and any(
        c.comparison.levels.get("name") in NAME_CLOSE and c.comparison.contact_agrees for c in others
    ):
        # Without a birth date the record cannot tell apart two persons of that name in one household.
        return [], True
    if chosen.comparison.identifier_agrees and chosen_levels.get("name") not in NAME_CLOSE:
        # The number agrees but the name only resembles; if another person has this very name and birth
        # date, the record is more likely that person using a sibling's number (twins, parents' cards).
        for c in others:
            levels = c.comparison.levels
            if levels.get("name") in ("exact", "sound") and levels.get("birth_date") == "exact":
                return [], True
    for c in others:
        if c.comparison.score < auto:
            continue
        verdict = person_verdict(profile, c.person_id, set(), authority)
        if (
            verdict is None
            or verdict.band() != "auto_link"
            or verdict.rare_name
            or verdict.without_birth_date
            or verdict.whole_name
            or verdict.surname_change
        ):
            continue
        if any(_same_authority_apart(other.person_id, c.person_id) for other in (chosen, *bridges)):
            continue  # one authority registered both under names that only resemble (twins): reviewers decide
        if not all(_persons_compatible(other.person_id, c.person_id) for other in (chosen, *bridges)):
            return [], True
        bridges.append(Candidate(c.person_id, verdict, c.identity_id))
    return bridges, False


def _same_authority_apart(person_a: int, person_b: int) -> bool:
    """Both persons hold a record of one assigning authority, under given names that only resemble: what
    person_verdict keeps apart (twins registered by one hospital) a third record must not bridge."""
    rows = Identity.objects.filter(person_id__in=[person_a, person_b]).values_list(
        "person_id", "assigning_authority", "profile"
    )
    sides: dict[int, dict[str, list[Profile]]] = {person_a: {}, person_b: {}}
    for pid, authority, profile in rows:
        sides[pid].setdefault(authority, []).append(Profile.from_json(profile))
    return any(
        given_names_differ(pa, pb)
        for authority in sides[person_a].keys() & sides[person_b].keys()
        for pa in sides[person_a][authority]
        for pb in sides[person_b][authority]
    )


def _persons_compatible(person_a: int, person_b: int) -> bool:
    rows = list(Identity.objects.filter(person_id__in=[person_a, person_b]).values_list("id", "person_id", "profile"))
    side_a = [(i, Profile.from_json(p)) for i, pid, p in rows if pid == person_a]
    side_b = [(i, Profile.from_json(p)) for i, pid, p in rows if pid == person_b]
    if dnl_crossed([i for i, _ in side_a], [i for i, _ in side_b]):
        return False
    return not any(compare(pa, pb).conflict for _, pa in side_a for _, pb in side_b)
