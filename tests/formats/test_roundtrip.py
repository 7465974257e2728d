"""The round trips DESIGN.md promises, through the whole canonical path (record dicts and
the polars frame): sharegpt and openai exact; alpaca exact up to the input merge."""

from __future__ import annotations

from hypothesis import given, settings

from sftdata.convert import canonical_record
from sftdata.errors import RecordError
from sftdata.formats import FORMATS
from sftdata.records import frame_from_records, records_from_frame
from tests.formats.strategies import alpaca_rows, openai_rows, sharegpt_rows


def through_canonical(row: dict, fmt: str, to: str | None = None) -> dict:
    record = canonical_record(FORMATS[fmt].to_canonical(row), "test")
    (back,) = records_from_frame(frame_from_records([record]))
    return FORMATS[to or fmt].from_canonical(back)


@settings(max_examples=300, deadline=None)
@given(sharegpt_rows())
def test_sharegpt_round_trip_is_exact(row):
    assert through_canonical(row, "sharegpt") == row


@settings(max_examples=300, deadline=None)
@given(openai_rows())
def test_openai_round_trip_is_exact(row):
    assert through_canonical(row, "openai") == row


@settings(max_examples=300, deadline=None)
@given(alpaca_rows())
def test_alpaca_round_trip_is_exact_up_to_the_input_merge(row):
    expected = dict(row)
    if expected.get("input"):
        expected["instruction"] = f"{row['instruction']}\n{row['input']}"
    expected["input"] = ""
    assert through_canonical(row, "alpaca") == expected


@settings(max_examples=200, deadline=None)
@given(sharegpt_rows())
def test_sharegpt_to_openai_keeps_every_message(row):
    """Across formats the conversation is the same; only format hints (system as a turn,
    the exact JSON spacing of function calls) stay behind in the source format. A tool
    turn that answers no call is valid ShareGPT but not OpenAI: it is rejected."""
    try:
        openai_row = through_canonical(row, "sharegpt", "openai")
    except RecordError as exc:
        assert exc.reason == "not_representable_as_openai:bad_role_order"
        speakers = [t["from"] for t in row["conversations"]]
        assert any(s == "observation" and (i == 0 or speakers[i - 1] not in ("function_call", "observation"))
                   for i, s in enumerate(speakers))
        return
    direct = FORMATS["sharegpt"].to_canonical(row)
    via_openai = FORMATS["openai"].to_canonical(openai_row)
    assert via_openai["messages"] == direct["messages"]
    assert via_openai["tools"] == direct["tools"]
