"""New rows of several tables that refer to each other, written in one statement.

A new identity is a person, the identity, its identifiers, its blocking keys and a history entry: five
INSERTs through the ORM, ~1.9 ms of CPU per registration on the FHIR write bench (bench/fhir_speed.py,
issue 4), most of it the ORM building and adapting each statement. On PostgreSQL they go as one statement
of data-modifying CTEs, each row naming the rows before it by ``(SELECT id FROM <cte>)``; elsewhere (SQLite,
the embedded default) each group is saved through the ORM in order, with the same result.

Only what the ORM itself would write is written: every concrete field's value as ``pre_save`` leaves it
(``auto_now_add`` stamps included), prepared by the field for this connection. No ``pre_save``/``post_save``
signals are sent on PostgreSQL (the ORM path sends them): nothing listens to these models' saves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.db import connection, models

_NAME = re.compile(r"^[a-z_]+$")


@dataclass
class Rows:
    """One INSERT of the chain: unsaved instances of one model. ``refers`` maps a foreign-key attname
    (``identity_id``) to the name of an earlier single-row group whose new primary key it takes."""

    name: str
    objects: list[models.Model]
    refers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        # The names become SQL identifiers (the CTEs, quoted): plain words written in the caller's code.
        if not all(_NAME.fullmatch(n) for n in (self.name, *self.refers.values())):
            raise ValueError(f"group names are lower-case words: {self.name!r} {self.refers!r}")


def rows_insert_chain(groups: list[Rows]) -> None:
    """Inserts the groups in order, in one statement where the database allows it, and sets the primary key
    of every object of a single-row group (the ones later groups refer to)."""
    groups = [g for g in groups if g.objects]
    if not groups:
        return
    if connection.vendor != "postgresql":
        _orm_chain(groups)
        return
    quote = connection.ops.quote_name
    ctes, params, single = [], [], []
    for g in groups:
        meta = g.objects[0]._meta
        fields = [f for f in meta.local_concrete_fields if not f.primary_key]
        if meta.parents or any(f.db_returning or f.generated for f in fields):
            # Inherited tables and values the database computes need the ORM's own INSERT.
            raise ValueError(f"{meta.label}: rows_insert_chain writes plain tables only")
        tuples = []
        for obj in g.objects:
            values = []
            for f in fields:
                if f.attname in g.refers:
                    values.append(f"(SELECT id FROM {quote(g.refers[f.attname])})")  # noqa: S608 (a checked word)
                else:
                    values.append("%s")
                    params.append(f.get_db_prep_save(f.pre_save(obj, True), connection))
            tuples.append(f"({', '.join(values)})")
        columns = ", ".join(quote(f.column) for f in fields)
        returning = f" RETURNING {quote(meta.pk.column)} AS id" if len(g.objects) == 1 else ""
        rows = ", ".join(tuples)
        insert = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {rows}{returning}"  # noqa: S608
        ctes.append(f"{quote(g.name)} AS ({insert})")
        if returning:
            single.append(g)
    selected = ", ".join(f"(SELECT id FROM {quote(g.name)})" for g in single) or "1"  # noqa: S608 (checked words)
    # Table and column names come from the models, group names from the caller's code; values are parameters.
    sql = f"WITH {', '.join(ctes)} SELECT {selected}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        pks = cursor.fetchone()
    new_pk = {g.name: pk for g, pk in zip(single, pks if single else (), strict=True)}
    for g in groups:
        for obj in g.objects:
            if g.name in new_pk:
                obj.pk = new_pk[g.name]
            for attname, name in g.refers.items():
                setattr(obj, attname, new_pk[name])
            obj._state.adding, obj._state.db = False, connection.alias


def _orm_chain(groups: list[Rows]) -> None:
    saved: dict[str, models.Model] = {}
    for g in groups:
        for obj in g.objects:
            for attname, name in g.refers.items():
                setattr(obj, attname, saved[name].pk)
        if len(g.objects) == 1:
            g.objects[0].save(force_insert=True)
            saved[g.name] = g.objects[0]
        else:
            type(g.objects[0]).objects.bulk_create(g.objects)
