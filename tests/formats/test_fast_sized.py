"""The sized route: compact files proven clean by byte counts, and everything it must refuse.

Each refusal case is a compact file that is one edit away from a clean one; the edit
either changes what the per-record path gives (so the sized route must refuse the
file) or only the bytes (it must still refuse: it cannot tell). In every case the
conversion as a whole must still give exactly what the per-record path gives.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pytest

from sftdata.convert.fast import plan as fast, run as fast_run, sized as fast_sized
from tests.formats.test_fast_path import TARGETS, assert_same


def compact(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


CLEAN = [compact({"instruction": f"Task {i}: say \"hi\"\n\tnow", "input": "" if i % 2 else f"ctx é {i}",
                  "output": f"Answer {i} 你好 😀 \\ \u2028 \x7f"}) for i in range(120)]  # more than the rows that make the plan


def sized(path: Path, to: str = "sharegpt") -> int | None:
    """What the sized route makes of the whole file: its row count, or None (refused).

    Both ways of writing it must agree, when the plan lets polars write the rows itself.
    """
    plan = fast.plan(path, path.with_suffix(".out.jsonl"), to)
    shape = fast_sized.framing(plan)
    assert shape is not None
    rows = fast_sized.convert(path, plan, shape, io.BytesIO())
    if not plan.extras:
        assert fast_sized.sink(path, plan, shape, path.with_suffix(".sink.jsonl")) == rows
    return rows


def write(tmp_path: Path, lines: list[str], end: str = "\n") -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(("\n".join(lines) + end).encode("utf-8", "surrogatepass"))
    return path


@pytest.mark.parametrize("char", [chr(c) for c in range(0x80)] + ["\x85", "\u2028", "\ufeff", "😀", "é"])
def test_the_writer_escapes_only_what_json_requires(char):
    """The proof needs the writer's escapes to be the shortest: check each ASCII character."""
    buf = io.BytesIO()
    pl.DataFrame({"v": [f"a{char}b"]}).write_ndjson(buf)
    written = buf.getvalue()[len(b'{"v":"a'):-len(b'b"}\n')]
    shortest = json.dumps(char, ensure_ascii=False)[1:-1].encode()
    assert written == shortest


@pytest.mark.parametrize("to", TARGETS)
@pytest.mark.parametrize("end", ["\n", ""])
def test_a_compact_file_takes_the_sized_route(tmp_path, to, end):
    path = write(tmp_path, CLEAN, end)
    assert sized(path, to) == len(CLEAN)
    assert_same(path, to, tmp_path)


@pytest.mark.parametrize("to", TARGETS)
def test_rows_of_several_shapes_take_the_sized_route(tmp_path, to):
    rows = [{"instruction": f"q{i}", "output": f"a{i}", **({"input": f"x{i}"} if i % 2 else {}),
             **({"system": "Be brief." if i % 3 else ""} if i % 4 else {}), **({"id": f"r{i}"} if i % 5 else {})}
            for i in range(60)]
    path = write(tmp_path, [compact(r) for r in rows])
    assert fast.plan(path, tmp_path / "o.jsonl", to).extras == ("id",)
    assert sized(path, to) == 60
    assert_same(path, to, tmp_path)


REFUSED = {
    "space after a colon": '{"instruction": "a","output":"b"}',
    "space between fields": '{"instruction":"a", "output":"b"}',
    "optional escape": '{"instruction":"\\u0061","output":"b"}',
    "escaped slash": '{"instruction":"a\\/b","output":"b"}',
    "duplicate key": '{"instruction":"a","output":"b","output":"c"}',
    "unknown key": '{"instruction":"a","output":"b","late":"c"}',
    "null field": '{"instruction":"a","output":"b","input":null}',
    "number": '{"instruction":"a","output":12}',
    "big number": '{"instruction":"a","output":123456789012345678901234567890}',
    "boolean": '{"instruction":"a","output":true}',
    "array": '{"instruction":"a","output":["x"]}',
    "object": '{"instruction":"a","output":{"x":"y"}}',
    "lone surrogate": '{"instruction":"a","output":"b\\ud800"}',
    "escaped NUL": '{"instruction":"a","output":"b\\u0000"}',
    "history": '{"instruction":"a","output":"b","history":[]}',
    "blank answer": '{"instruction":"a","output":" "}',
    "blank line": "",
    "CR before the newline": '{"instruction":"a","output":"b"}\r',
    "byte order mark": '\ufeff{"instruction":"a","output":"b"}',
    "bad JSON": '{"instruction":"a",',
    "bad UTF-8": '{"instruction":"a\udcff","output":"b"}',
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_anything_but_a_minimal_clean_line_is_refused(tmp_path, case):
    path = write(tmp_path, [*CLEAN[:115], REFUSED[case], *CLEAN[115:]])
    assert sized(path) is None
    for to in TARGETS:
        assert_same(path, to, tmp_path)


def test_bytes_saved_in_one_line_cannot_pay_for_bytes_added_in_another(tmp_path):
    """A number saves its two quotes; a space elsewhere adds them back: still refused."""
    path = write(tmp_path, [*CLEAN, '{"instruction":"a","output":12}', '{"instruction": "a" ,"output":"b"}'])
    assert sized(path) is None
    assert_same(path, "sharegpt", tmp_path)


def test_a_file_written_with_spaces_is_probed_once_then_checked(tmp_path, monkeypatch):
    rows = [json.loads(line) for line in CLEAN]
    path = write(tmp_path, [json.dumps(r) for r in rows] * 20)
    calls = []
    real = fast_sized.convert

    def spy(source, *args, **kwargs):
        calls.append(type(source).__name__)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(fast_sized, "convert", spy)
    monkeypatch.setattr(fast_run, "PROBE_BYTES", 4096)
    assert_same(path, "sharegpt", tmp_path)
    assert calls == ["bytes"]  # the probe refused it: the whole file went the checked route


@pytest.mark.parametrize("to", TARGETS)
def test_a_system_prompt_after_the_first_rows_leaves_polars_writing_for_batches(tmp_path, to):
    late = compact({"instruction": "a", "output": "b", "system": "Be brief."})
    path = write(tmp_path, [*CLEAN, late])
    plan = fast.plan(path, tmp_path / "o.jsonl", to)
    assert plan.extras == ()
    shape = fast_sized.framing(plan)
    assert fast_sized.sink(path, plan, shape, tmp_path / "sink.jsonl") is None
    assert fast_sized.convert(path, plan, shape, io.BytesIO()) == len(CLEAN) + 1
    assert_same(path, to, tmp_path)


def test_progress_adds_up_to_the_rows_on_every_route(tmp_path, monkeypatch):
    monkeypatch.setattr(fast_run, "WATCH_SECONDS", 0.001)
    spaced = [json.dumps(json.loads(line)) for line in CLEAN]
    with_id = [compact({**json.loads(line), "id": str(i)}) for i, line in enumerate(CLEAN)]
    for lines in (CLEAN * 50, with_id, spaced, [*CLEAN, "{broken"]):
        path = write(tmp_path, lines)
        seen: list[int] = []
        rows_in = fast_run.convert(fast.plan(path, tmp_path / "o.jsonl", "sharegpt"), progress=seen.append)[0]
        assert sum(seen) == rows_in == len(lines)


def test_a_system_prompt_in_the_first_rows_goes_straight_to_batches(tmp_path, monkeypatch):
    lines = [compact({**json.loads(line), "system": "Be brief."}) for line in CLEAN]
    path = write(tmp_path, lines)
    assert fast.plan(path, tmp_path / "o.jsonl", "openai").system_seen
    calls = []
    monkeypatch.setattr(fast_sized, "sink", lambda *args: calls.append(args))
    assert_same(path, "openai", tmp_path)
    assert calls == []


def test_alpaca_files_sftdata_writes_take_the_vectorised_general_path(tmp_path):
    """sftdata's own Alpaca output names every column (``history`` [] included), which this
    route would send per-record: such files take the general vectorised path instead."""
    from sftdata.convert import convert_file

    source = tmp_path / "chat.jsonl"
    source.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Say {i} in French, \"quoted\" 😀"},
        {"role": "assistant", "content": f"réponse {i}"}]}) + "\n" for i in range(30)), encoding="utf-8")
    convert_file(source, tmp_path / "alpaca.jsonl", "alpaca")
    assert fast.plan(tmp_path / "alpaca.jsonl", tmp_path / "o.jsonl", "sharegpt") is None
    without_history = tmp_path / "plain.jsonl"
    without_history.write_text("".join(
        json.dumps({k: v for k, v in json.loads(line).items() if k != "history"},
                   ensure_ascii=False, separators=(",", ":")) + "\n"
        for line in (tmp_path / "alpaca.jsonl").read_text(encoding="utf-8").splitlines()), encoding="utf-8")
    assert sized(without_history) == 30
