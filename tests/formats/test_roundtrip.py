"""The round trips DESIGN.md promises, through the whole canonical path (record dicts and
the polars frame): sharegpt and openai exact up to what the writers normalise (every
column written, weights only where informative, tools in OpenAI's shape; `as_written`);
alpaca exact up to the input merge."""

from __future__ import annotations

from hypothesis import given, settings

from sftdata.convert import canonical_record
from sftdata.errors import RecordError
from sftdata.formats import FORMATS
from sftdata.formats.common import informative_weight, openai_tool
from sftdata.records import frame_from_records, records_from_frame
from tests.formats.strategies import alpaca_rows, openai_rows, sharegpt_rows


def as_written(row: dict, fmt: str) -> dict:
    """``row`` as sftdata writes it back: every column of the format (empty where absent),
    weights only where they differ from the role's default, tools in OpenAI's shape."""
    out = dict(row)
    if fmt == "sharegpt":
        out = {"conversations": out.pop("conversations"), "system": out.pop("system", ""),
               "tools": out.pop("tools", ""), **out}
        out["conversations"] = [{k: v for k, v in t.items()
                                 if k != "weight" or informative_weight(ROLE[t["from"]], v) is not None}
                                for t in out["conversations"]]
    if fmt == "openai":
        out["messages"] = [{k: v for k, v in m.items()
                            if k != "weight" or informative_weight(m["role"], v) is not None}
                           for m in out["messages"]]
        if out.get("tools") is not None:
            out["tools"] = [openai_tool(t) for t in out["tools"]]
    if fmt == "alpaca":
        out.setdefault("system", "")
        out.setdefault("history", [])
    return out


ROLE = {"human": "user", "gpt": "assistant", "function_call": "assistant", "observation": "tool",
        "system": "system"}


def without_default_weight(message: dict) -> dict:
    if informative_weight(message["role"], message.get("weight")) is None:
        return {k: v for k, v in message.items() if k != "weight"}
    return message


def through_canonical(row: dict, fmt: str, to: str | None = None) -> dict:
    record = canonical_record(FORMATS[fmt].to_canonical(row), "test")
    (back,) = records_from_frame(frame_from_records([record]))
    return FORMATS[to or fmt].from_canonical(back)


@settings(max_examples=300, deadline=None)
@given(sharegpt_rows())
def test_sharegpt_round_trip_is_exact(row):
    assert through_canonical(row, "sharegpt") == as_written(row, "sharegpt")


@settings(max_examples=300, deadline=None)
@given(openai_rows())
def test_openai_round_trip_is_exact(row):
    assert through_canonical(row, "openai") == as_written(row, "openai")


@settings(max_examples=300, deadline=None)
@given(alpaca_rows())
def test_alpaca_round_trip_is_exact_up_to_the_input_merge(row):
    expected = as_written(row, "alpaca")
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
    assert via_openai["messages"] == [without_default_weight(m) for m in direct["messages"]]
    assert via_openai["tools"] == direct["tools"]
