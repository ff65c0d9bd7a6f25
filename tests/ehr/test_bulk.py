"""The archive's bulk writer: JSON text of bodies as COPY takes them."""

from __future__ import annotations

import json

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
