"""The direct Alpaca -> ShareGPT/OpenAI route gives exactly what the per-record path gives.

Every test converts the same JSONL file both ways (the reference reader and writer
against ``sftdata.convert.fast``) and compares the parsed output lines, the counts and
the rejects (reason codes and line numbers), on clean, messy and real-world data.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftdata.convert import convert_file, records_to_rows, reference_read
from sftdata.io import write_rows
from sftdata.records import records_from_frame
from sftdata.convert.fast import plan as fast, run as fast_run, sized as fast_sized
from tests.formats.strategies import alpaca_rows

TARGETS = ("sharegpt", "openai")


def read_lines(path: Path) -> list[str]:
    """JSONL lines (split on newlines only: U+2028 inside a value is not a line break)."""
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def per_record(path: Path, to: str, out: Path):
    result = reference_read(path)
    rows, write_rejects = records_to_rows(records_from_frame(result.frame), to)
    write_rows(out, rows)
    return result.rows_in, read_lines(out), result.rejects + write_rejects


def vectorised(path: Path, to: str, out: Path, block_bytes: int = fast_run.BLOCK_BYTES):
    plan = fast.plan(path, out, to)
    assert plan is not None, "the fast path should take an Alpaca .jsonl file"
    rows_in, rows_out, rejects = fast_run.convert(plan, block_bytes=block_bytes)
    lines = read_lines(out)
    assert rows_out == len(lines)
    return rows_in, lines, rejects


def clean_share(plan: fast.Plan) -> float:
    """The share of lines the checked route proves clean."""
    blocks = [fast_run.analyse_block(block, plan).analysis for block in fast_run.blocks(plan.input, 1 << 20)]
    return pl.concat(blocks)["_clean"].mean()


def assert_same(path: Path, to: str, tmp: Path, block_bytes: int = fast_run.BLOCK_BYTES) -> list[dict]:
    slow_in, slow_lines, slow_rejects = per_record(path, to, tmp / "slow.jsonl")
    fast_in, fast_lines, fast_rejects = vectorised(path, to, tmp / "fast.jsonl", block_bytes)
    assert fast_in == slow_in
    assert [json.loads(x) for x in fast_lines] == [json.loads(x) for x in slow_lines]
    assert fast_rejects == slow_rejects
    return slow_rejects


MESSY = [
    '{"instruction": "a", "input": "", "output": "b"}',
    '{"instruction": "a", "output": 3}',
    '{"instruction": "a", "output": true}',
    '{"instruction": "a", "input": 5, "output": "b"}',
    '{"instruction": "a", "output": "b", "output": "c"}',
    '{"instruction": "a", "output": "b", "outp\\u0075t": "c"}',
    "",
    "   \t",
    '{"instruction": "a", "input": null, "output": "b", "system": "sys"}',
    "not json",
    "[1, 2]",
    '{"instruction": "a", "output": "b",}',
    '{"instruction": "  ", "input": " x ", "output": "b", "id": "r1"}',
    '{"instruction": " ", "input": "\\u00a0", "output": "b"}',
    '{"instruction": "a", "output": "\\u001f \\u0085"}',
    '{"instruction": "a", "output": "   "}',
    '{"instruction": "a", "output": "b", "history": [["q", "r"]]}',
    '{"instruction": "a", "output": "b", "history": []}',
    '{"instruction": "a", "output": "b", "history": [["q"]]}',
    '{"instruction": "a", "output": "b", "id": "x7", "tag": 5}',
    '{"instruction": "a", "output": "b", "note": null}',
    '{"instruction": "a", "output": "b", "meta": {"k": "v"}}',
    '{"instruction": "12", "input": "-3.5", "output": "true"}',
    '{"instruction": "[x]", "output": "{y}"}',
    '{"instruction": "a\\n\\"q\\"", "input": "\\u00e9\\t", "output": "b\\u2028\\ud83d\\ude00", "system": "S"}',
    '{"instruction": "say \\"k\\": v", "output": "b"}',
    '\ufeff{"instruction": "a", "output": "b"}',
    '{"instruction": "a", "output": "b", "id": "x8"}\r',
    '{"instruction":"CJK 你好","output":"\u0645\u0631\u062d\u0628\u0627","system":""}',
    '{"instruction": "a", "output": NaN}',
    '{"output": "no instruction"}',
]


@pytest.mark.parametrize("to", TARGETS)
def test_messy_lines_give_the_same_rows_and_rejects(tmp_path, to):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(MESSY) + "\n", encoding="utf-8")
    rejects = assert_same(path, to, tmp_path)
    reasons = {r["location"]: r["reason"] for r in rejects}
    assert reasons[2] == "not_a_string:output" and reasons[10] == "bad_json"
    assert reasons[16] == "empty_content:output"


@pytest.mark.parametrize(("to", "block_bytes"), [("sharegpt", 300), ("openai", 7)])
def test_bad_utf8_and_small_blocks_take_the_block_route(tmp_path, to, block_bytes):
    good = MESSY[0].encode()
    data = b"\n".join([good, b'{"instruction": "\xff\xfe", "output": "b"}', *[m.encode() for m in MESSY]] * 3)
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)  # no newline at the end: the last line still counts
    rejects = assert_same(path, to, tmp_path, block_bytes=block_bytes)
    period = 2 + len(MESSY)
    assert [r["location"] for r in rejects if r["reason"] == "bad_utf8"] == [2, 2 + period, 2 + 2 * period]


def test_a_bad_line_after_written_batches_starts_over_by_blocks(tmp_path, monkeypatch):
    """A compact file passes the probe, then fails further on: it starts over, checked."""
    monkeypatch.setattr(fast_sized, "BATCH_ROWS", 7)
    monkeypatch.setattr(fast_run, "PROBE_BYTES", 200)
    good = [json.dumps({"instruction": f"q{i}", "output": f"a{i}"}, separators=(",", ":")) for i in range(60)]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(good[:40] + ["{broken"] + good[40:]) + "\n", encoding="utf-8")
    seen = []
    plan = fast.plan(path, tmp_path / "fast.jsonl", "openai")
    assert fast_run.convert(plan, progress=seen.append)[:2] == (61, 60)
    assert sum(seen) == 61
    assert [(r["location"], r["reason"]) for r in assert_same(path, "openai", tmp_path)] == [(41, "bad_json")]


def test_clean_rows_take_the_vectorised_route(tmp_path):
    rows = [{"instruction": f"Task {i}", "input": "" if i % 2 else f"ctx {i}", "output": f"Answer {i}.",
             **({"system": "Be brief."} if i % 3 == 0 else {}), **({"id": f"r{i}"} if i % 5 == 0 else {})}
            for i in range(500)]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    plan = fast.plan(path, tmp_path / "out.jsonl", "sharegpt")
    assert plan.extras == ("id",)
    assert clean_share(plan) == 1.0
    # Keys the writers set themselves, after the rows that name the format.
    with path.open("a", encoding="utf-8") as f:
        f.write('{"instruction": "a", "output": "b", "conversations": "c", "messages": "m"}\n')
    for to in TARGETS:
        assert_same(path, to, tmp_path)


line_text = st.text(max_size=30)
raw_lines = st.one_of(
    st.builds(lambda i, o: json.dumps({"instruction": i, "output": o}), line_text, line_text),
    st.builds(lambda k, v: '{"instruction": "x", "output": "y", %s: %s}' % (json.dumps(k), v),
              st.sampled_from(["output", "input", "system", "instruction", "id", "history"]),
              st.sampled_from(["1", "null", "true", "[]", '[["a", "b"]]', '{"a": 1}', '"2"', '" "'])),
    st.sampled_from(["", "  ", "{", "[]", '"x"', "{}", '{"instruction": "a", "output": "b"} x']),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(alpaca_rows(), min_size=1, max_size=12), noise=st.lists(raw_lines, max_size=6),
       seed=st.integers(0, 2**16), ascii_only=st.booleans(), compact=st.booleans())
def test_generated_rows_match_the_per_record_path(tmp_path, rows, noise, seed, ascii_only, compact):
    separators = (",", ":") if compact else (", ", ": ")
    lines = [json.dumps(r, ensure_ascii=ascii_only, separators=separators) for r in rows]
    tail = lines[1:] + noise
    random.Random(seed).shuffle(tail)  # the first line stays a good row: it names the format
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([lines[0], *tail]) + "\n", encoding="utf-8")
    for to in TARGETS:
        assert_same(path, to, tmp_path)


@pytest.mark.parametrize("name", ["alpaca_en_demo.json", "alpaca_zh_demo.json", "identity.json"])
def test_realworld_alpaca_files_match(realworld, tmp_path, name):
    records = json.loads((realworld / name).read_text(encoding="utf-8"))
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    for to in TARGETS:
        assert assert_same(path, to, tmp_path) == []
    plan = fast.plan(path, tmp_path / "out.jsonl", "sharegpt")
    assert clean_share(plan) > 0.9


def test_convert_file_picks_a_route_and_reports_counts(realworld, tmp_path):
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("\n".join(MESSY) + "\n", encoding="utf-8")
    done = convert_file(jsonl, tmp_path / "out.jsonl", "sharegpt")
    assert (done.rows_in, done.format) == (len([m for m in MESSY if m.strip()]), "alpaca")
    assert done.rows_out + len(done.rejects) == done.rows_in
    as_json = convert_file(realworld / "identity.json", tmp_path / "id.jsonl", "openai")
    assert (as_json.rows_in, as_json.rows_out, as_json.rejects) == (91, 91, [])
    assert fast.plan(realworld / "identity.json", tmp_path / "id.jsonl", "openai") is None
    assert fast.plan(jsonl, tmp_path / "out.jsonl", "alpaca") is None


def test_cli_convert_uses_the_same_output(cli, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(MESSY) + "\n", encoding="utf-8")
    result = cli("convert", path, "-o", tmp_path / "out.jsonl", "--to", "sharegpt")
    assert result.exit_code == 0
    _, expected, rejects = per_record(path, "sharegpt", tmp_path / "slow.jsonl")
    got = read_lines(tmp_path / "out.jsonl")
    assert [json.loads(x) for x in got] == [json.loads(x) for x in expected]
    written = [json.loads(x) for x in read_lines(tmp_path / ".rejects" / "out.rejects.jsonl")]
    assert [(r["location"], r["reason"]) for r in written] == [(r["location"], r["reason"]) for r in rejects]


def test_benchmark_input_and_baseline_agree_with_sftdata(tmp_path):
    """The benchmark compares like with like: its baseline converter gives our conversations."""
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "convert" / "bench_convert.py"
    if not script.exists():
        pytest.skip("benchmarks/ is not part of an installed copy")
    spec = importlib.util.spec_from_file_location("bench_convert", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    source = tmp_path / "alpaca.jsonl"
    bench.generate(300, source)
    assert convert_file(source, tmp_path / "out.jsonl", "sharegpt")[:3] == (300, 300, [])
    ours = [json.loads(x)["conversations"] for x in read_lines(tmp_path / "out.jsonl")]
    theirs = [bench.llamafactory_alpaca(json.loads(x))["conversations"] for x in read_lines(source)]
    assert ours == theirs
    rows = [json.loads(x) for x in read_lines(source)]
    words = [sum(len(r[k].split()) for k in ("instruction", "input", "output")) for r in rows]
    assert 130 <= sum(words) / len(words) <= 170  # "about 150 words each"
