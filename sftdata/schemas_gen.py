"""Render the JSON Schemas in ``schemas/`` from the pydantic models.

``sftdata schemas`` writes them; ``sftdata schemas --check`` (and a test) fails when a
committed schema file and its model have drifted apart.
"""

from __future__ import annotations

import json

from sftdata.formats.models import AlpacaRow, OpenAIRow, ShareGPTRow
from sftdata.records import Record

MODELS = {
    "record.schema.json": Record,
    "alpaca.schema.json": AlpacaRow,
    "sharegpt.schema.json": ShareGPTRow,
    "openai.schema.json": OpenAIRow,
}


def render_schemas() -> dict[str, str]:
    """File name -> schema text (stable: sorted keys, trailing newline)."""
    return {
        name: json.dumps(model.model_json_schema(by_alias=True), indent=2, sort_keys=True) + "\n"
        for name, model in MODELS.items()
    }
