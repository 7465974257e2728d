"""Every real-world file converts to every format: well-formed records convert, the
ones a target cannot represent are rejected with their reason, and the counts add up."""

from __future__ import annotations

import json

import pytest

from sftdata.convert import read_canonical, write_records
from sftdata.formats.common import informative_weight
from sftdata.rejects import count_reasons

FILES = {  # file -> (detected format, rows as documented in SOURCES.md)
    "alpaca_en_demo.json": ("alpaca", 999),
    "alpaca_zh_demo.json": ("alpaca", 1000),
    "identity.json": ("alpaca", 91),
    "glaive_toolcall_en_demo.json": ("sharegpt", 300),
    "kto_en_demo.json": ("openai", 300),
    "v1_sft_demo.jsonl": ("openai", 500),
}


def _uses_tools(row: dict) -> bool:
    """Independent of the converters: does this ShareGPT row carry tools or tool turns?"""
    tools = json.loads(row.get("tools") or "[]")
    return bool(tools) or any(t["from"] in ("function_call", "observation") for t in row["conversations"])


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("to", ["alpaca", "sharegpt", "openai"])
def test_realworld_file_converts(realworld, tmp_path, name, to):
    fmt, rows = FILES[name]
    result = read_canonical(realworld / name)
    assert (result.format, result.rows_in, result.frame.height, result.rejects) == (fmt, rows, rows, [])

    out = tmp_path / f"out.{to}.jsonl"
    rejects = write_records(result.frame, out, to)
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(written) + len(rejects) == rows

    if name.startswith("glaive") and to == "alpaca":
        raw = json.loads((realworld / name).read_text(encoding="utf-8"))
        expected = sum(_uses_tools(r) for r in raw)
        assert expected > 0
        assert count_reasons(rejects) == {"not_representable_as_alpaca": expected}
    else:
        assert rejects == []

    # Whatever was written reads back as the same conversations.
    again = read_canonical(out)
    assert again.rejects == []
    kept_ids = {r["id"] for r in rejects}
    before = [m for i, m in zip(result.frame["id"], result.frame["messages"].to_list()) if i not in kept_ids]
    if to != "alpaca":  # alpaca merges input into the instruction: same text, same turns
        # (a weight equal to its role's default is not written: it says nothing)
        assert again.frame["messages"].to_list() == [
            [{**m, "weight": informative_weight(m["role"], m["weight"])} for m in messages]
            for messages in before]


def test_chinese_text_is_kept_byte_for_byte(realworld, tmp_path):
    out = tmp_path / "zh.jsonl"
    write_records(read_canonical(realworld / "alpaca_zh_demo.json").frame, out, "alpaca")
    raw = json.loads((realworld / "alpaca_zh_demo.json").read_text(encoding="utf-8"))
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["output"] for r in written] == [r["output"] for r in raw]
    assert "\\u" not in out.read_text(encoding="utf-8")  # CJK stays readable, not escaped


def test_v1_parts_and_loss_weights_become_canonical(realworld):
    frame = read_canonical(realworld / "v1_sft_demo.jsonl").frame
    first = frame["messages"][0].to_list()
    raw = json.loads((realworld / "v1_sft_demo.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert [m["content"] for m in first] == ["".join(p["value"] for p in m["content"]) for m in raw["messages"]]
    assert [m["weight"] for m in first] == [m["loss_weight"] for m in raw["messages"]]


def test_kto_label_column_is_kept(realworld, tmp_path):
    out = tmp_path / "kto.jsonl"
    write_records(read_canonical(realworld / "kto_en_demo.json").frame, out, "sharegpt")
    raw = json.loads((realworld / "kto_en_demo.json").read_text(encoding="utf-8"))
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["label"] for r in written] == [r["label"] for r in raw]
