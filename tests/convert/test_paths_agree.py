"""The vectorised read and write paths give exactly what the reference gives: the same
records, rejects (reason and location), counts and facts, for every format and file
kind, on generated valid rows mixed with noise, and on the real-world files."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftdata.io import write_rows
from tests.convert.helpers import assert_reads_agree, assert_writes_agree, jsonl
from tests.formats.strategies import alpaca_rows, openai_rows, sharegpt_rows

FORMATS = {"alpaca": alpaca_rows, "sharegpt": sharegpt_rows, "openai": openai_rows}
TARGETS = ("alpaca", "sharegpt", "openai", "canonical")
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
noise = st.sampled_from([
    "", "{", "[]", '"x"', "{}", "not json", '{"output": NaN}', '{"a": 1e400}',
    '{"instruction": "a", "output": "b", "output": "c"}', '{"instruction": "a", "output": 5}',
    '{"instruction": "a", "output": "b", "x": null}', '{"messages": "hi"}',
    '{"conversations": [{"from": "human", "value": "q"}]}',
    '{"conversations": {"from": "human", "value": "q"}}',
    '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": "1"}]}',
    '{"instruction": "\\ud800", "output": "b"}', '{"instruction": "a", "output": "b", "_sftdata": 1}',
])


def _mixed(draw_rows, noise_lines, seed, **dumps) -> list[str]:
    lines = [json.dumps(r, **dumps) for r in draw_rows]
    tail = lines[1:] + noise_lines
    random.Random(seed).shuffle(tail)
    return [lines[0], *tail]  # the first line is a good row: it names the format


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2**16), compact=st.booleans(), ascii_only=st.booleans())
def test_jsonl_reads_and_writes_agree(tmp_path, fmt, data, seed, compact, ascii_only):
    rows = data.draw(st.lists(FORMATS[fmt](), min_size=1, max_size=8))
    extra = data.draw(st.lists(noise, max_size=5))
    separators = (",", ":") if compact else (", ", ": ")
    path = jsonl(tmp_path / "in.jsonl", _mixed(rows, extra, seed, separators=separators,
                                                ensure_ascii=ascii_only))
    read = assert_reads_agree(path, fmt)
    for to in TARGETS:
        assert_writes_agree(read.frame, to, tmp_path)


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_json_arrays_and_tables_agree(tmp_path, fmt, data):
    rows = data.draw(st.lists(FORMATS[fmt](), min_size=1, max_size=8))
    array = tmp_path / "in.json"
    array.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    assert_reads_agree(array, fmt)
    for ext in (".parquet", ".csv"):
        table = tmp_path / f"in{ext}"
        write_rows(table, rows)
        assert_reads_agree(table, fmt)


@pytest.mark.parametrize("name", ["alpaca_en_demo.json", "alpaca_zh_demo.json", "identity.json",
                                  "glaive_toolcall_en_demo.json", "kto_en_demo.json", "v1_sft_demo.jsonl"])
def test_realworld_files_agree_in_every_file_kind(realworld, tmp_path, name):
    read = assert_reads_agree(realworld / name)
    rows = [r for r in json.loads((realworld / name).read_text(encoding="utf-8"))] \
        if name.endswith(".json") else [json.loads(x) for x in (realworld / name).read_text().splitlines()]
    jsonl(tmp_path / "spaced.jsonl", rows)
    assert_reads_agree(tmp_path / "spaced.jsonl")
    for to in TARGETS:
        assert_writes_agree(read.frame, to, tmp_path)


def test_most_rows_take_the_vectorised_way(tmp_path, monkeypatch):
    """The reference path is the exception: clean files go vectorised (a test that the
    proof is not simply always false)."""
    from sftdata.convert import read as reader

    seen = {"reference": 0}
    original = reader.row_to_record

    def counting(row, fmt, source):
        seen["reference"] += 1
        return original(row, fmt, source)

    monkeypatch.setattr(reader, "row_to_record", counting)
    rows = [{"instruction": f"Task {i} \u00e9", "input": "" if i % 2 else "ctx", "output": f"Answer \"{i}\"",
             "id": i, "tag": "x"} for i in range(300)]
    for fmt_rows, name in ((rows, "a.jsonl"),
                           ([{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": f"a{i}"}],
                              "system": "s"} for i in range(300)], "s.jsonl"),
                           ([{"messages": [{"role": "user", "content": "q"},
                                           {"role": "assistant", "content": f"a{i}", "reasoning_content": "think"}]}
                             for i in range(300)], "o.jsonl")):
        seen["reference"] = 0
        assert_reads_agree(jsonl(tmp_path / name, fmt_rows))
        assert seen["reference"] == 0


@pytest.mark.parametrize("ext", [".csv", ".parquet"])
def test_an_extra_column_with_a_nested_fields_name_agrees(tmp_path, ext):
    """An Alpaca table with a `tool_calls` (or `messages`...) column of JSON text: the
    reference decodes it, so the vectorised way must give the same records."""
    rows = [{"instruction": "0", "output": "0"},
            {"instruction": "1", "output": "1", "tool_calls": []},
            {"instruction": "2", "output": "2", "tool_calls": "plain text", "messages": '{"a": 1}'}]
    table = tmp_path / f"in{ext}"
    write_rows(table, rows)
    assert_reads_agree(table, "alpaca")
