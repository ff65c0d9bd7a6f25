"""How the archive stores what it is sent: JSON text of bodies as COPY takes them, compression of requests."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from ehr.bulk import json_text


def test_json_text_is_the_same_json_as_json_dumps_for_a_resource():
    body = {
        "resourceType": "Observation",
        "valueQuantity": {"value": 5.25, "unit": "mmol/L"},
        "note": [{"text": "空腹"}],
    }
    assert json.loads(json_text(body)) == body
    assert "空腹" in json_text(body)  # non-ASCII kept as it is, as the jsonb column stores it


def test_json_text_writes_what_orjson_cannot():
    # An integer beyond 64 bits (a decimal sent as an integer literal) is still written, by json.dumps.
    body = {"valueDecimal": 10**30}
    assert json.loads(json_text(body)) == body


@pytest.mark.django_db
def test_submission_bodies_are_compressed_with_lz4_where_postgresql_offers_it():
    if connection.vendor != "postgresql":
        pytest.skip("TOAST compression is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        if not cursor.fetchone()[0]:
            pytest.skip("this PostgreSQL was built without lz4")
        cursor.execute(
            "SELECT attcompression FROM pg_attribute WHERE attrelid = 'ehr_submission'::regclass AND attname = 'body'"
        )
        assert cursor.fetchone()[0] == "l"
