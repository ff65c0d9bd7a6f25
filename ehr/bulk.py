"""Bulk inserts for the archive's hot tables: PostgreSQL ``COPY`` where the archive runs on PostgreSQL, the
ORM's ``bulk_create`` elsewhere (SQLite, the embedded default).

Measured on a typical 29-resource Bundle (bench/fhir_speed.py, issue 4): ``bulk_create`` spent more CPU
building, adapting and quoting one literal ``INSERT`` per table (every JSON body escaped into the statement
text, every token row a model instance) than PostgreSQL spent storing the rows. ``COPY … FROM STDIN`` takes
the rows as tuples and psycopg's C writer formats them; the primary keys the token and reference rows need
are drawn from the table's identity sequence first, in one query.
"""

from __future__ import annotations

import json

import orjson
from django.db import connection, models


def _copy(model: type[models.Model], columns: list[str], rows: list[tuple]) -> None:
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    # psycopg's own cursor (Django's wrapper has no copy()), its errors made Django's: a unique key another
    # writer won is an IntegrityError, which the archive answers as a lost race (WriteRace), never a 500.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        raw = cursor.cursor
        with raw.copy(f"COPY {connection.ops.quote_name(model._meta.db_table)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def ids_reserve(model: type[models.Model], count: int) -> list[int]:
    """``count`` new primary keys from the table's identity sequence (PostgreSQL)."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, model._meta.pk.column, count],
        )
        return [row[0] for row in cursor.fetchall()]


def objects_insert(objects: list[models.Model]) -> None:
    """Inserts new model instances of one model and sets their primary keys, like ``bulk_create``."""
    if not objects:
        return
    model = type(objects[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objects, batch_size=1000)
        return
    for obj, pk in zip(objects, ids_reserve(model, len(objects)), strict=True):
        obj.pk = pk
    fields = model._meta.concrete_fields
    # JSON goes as its text; COPY's jsonb input parses it.
    encoders = {f.attname: f.encoder for f in fields if isinstance(f, models.JSONField)}
    rows = []
    for obj in objects:
        row = []
        for f in fields:
            value = getattr(obj, f.attname)
            if f.attname in encoders and value is not None:
                value = json_text(value, encoders[f.attname])
            row.append(value)
        rows.append(tuple(row))
        obj._state.adding, obj._state.db = False, connection.alias
    _copy(model, [f.column for f in fields], rows)


def json_text(value, encoder: type[json.JSONEncoder] | None = None) -> str:
    """``value`` as JSON text. orjson (a tenth of json.dumps's CPU for a resource body, measured on the
    bench's Bundles) for what it can write; json.dumps with the field's encoder for anything else (an
    integer beyond 64 bits, a type only the encoder knows). orjson writes NaN and infinities as null where
    json.dumps wrote text jsonb refuses; R4B validation refuses them first (a 400 naming the element)."""
    if encoder is None:
        try:
            return orjson.dumps(value).decode()
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            pass
    return json.dumps(value, cls=encoder, ensure_ascii=False)


def rows_insert(model: type[models.Model], attnames: list[str], rows: list[tuple]) -> None:
    """Inserts plain rows (values in the order of ``attnames``, no primary key: the table assigns it)."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create((model(**dict(zip(attnames, row, strict=True))) for row in rows), batch_size=2000)
        return
    column = {f.attname: f.column for f in model._meta.concrete_fields}
    _copy(model, [column[name] for name in attnames], rows)


def rows_insert_returning_ids(model: type[models.Model], attnames: list[str], rows: list[tuple]) -> list[int]:
    """Inserts plain rows (values in the order of ``attnames``, without the primary key) and returns their new
    primary keys in order: the ids drawn from the sequence first, then one ``COPY`` (PostgreSQL) — no model
    instance is built, which is most of the cost of a small batch (the HL7 v2 inbox's group commit)."""
    if not rows:
        return []
    if connection.vendor != "postgresql":
        objects = [model(**dict(zip(attnames, row, strict=True))) for row in rows]
        model.objects.bulk_create(objects, batch_size=2000)
        return [obj.pk for obj in objects]
    ids = ids_reserve(model, len(rows))
    column = {f.attname: f.column for f in model._meta.concrete_fields}
    pk = model._meta.pk.column
    _copy(model, [pk, *(column[name] for name in attnames)], [(i, *row) for i, row in zip(ids, rows, strict=True)])
    return ids
