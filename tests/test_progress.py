"""Progress with totals: the reader gives the bar the file's row count (exact for
Parquet, CSV and JSON arrays; for JSON Lines estimated batch by batch, exact at the
end), the two-pass steps name their phases, and the mix shows reading, drawing and
writing. A plain function still works as progress (the Python API)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from sftdata.convert import BatchReader
from sftdata.progress import Bar
from sftdata.steps.mix_recipe import MixParams, MixSourceSpec, stream_mix
from sftdata.steps.registry import build_step
from sftdata.convert import RejectsWriter
from sftdata.stream import run_file


class Recorder:
    """Records what a bar would be told: counts, totals and phases, in order."""

    def __init__(self):
        self.events: list[tuple] = []

    def __call__(self, n: int) -> None:
        self.events.append(("advance", n))

    def set_total(self, total):
        self.events.append(("total", total))

    def phase(self, description, total=None):
        self.events.append(("phase", description, total))

    def totals(self):
        return [e[1] for e in self.events if e[0] == "total"]

    def advanced(self, after_phase: str | None = None) -> int:
        counting, n = after_phase is None, 0
        for e in self.events:
            if e[0] == "phase":
                counting = after_phase is not None and e[1] == after_phase
            elif e[0] == "advance" and counting:
                n += e[1]
        return n


def _rows(n: int) -> list[dict]:
    return [{"instruction": f"Question number {i} about {'cats' if i % 3 else 'dogs'}?",
             "output": f"Answer {i // 2}"} for i in range(n)]


@pytest.mark.parametrize("ext", [".jsonl", ".parquet", ".csv", ".json"])
def test_the_reader_gives_the_row_count(tmp_path, ext):
    rows = _rows(3000)
    path = tmp_path / f"data{ext}"
    if ext == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif ext == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif ext == ".parquet":
        pl.DataFrame(rows).write_parquet(path)
    else:
        pl.DataFrame(rows).write_csv(path)
    bar = Recorder()
    reader = BatchReader(path, progress=bar, batch_bytes=20_000)  # several batches of JSON Lines
    assert sum(b.frame.height for b in reader) == 3000
    totals = bar.totals()
    assert totals and totals[-1] == 3000  # exact once the whole file is read
    assert bar.advanced() == 3000
    if ext == ".jsonl":
        assert len(totals) > 1 and all(abs(t - 3000) < 300 for t in totals)  # estimates, close


def test_two_pass_steps_name_their_phases_and_write_with_a_total(tmp_path):
    path = tmp_path / "data.jsonl"
    rows = _rows(300) + _rows(100)  # 100 exact duplicates
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    bar = Recorder()
    done = run_file(path, tmp_path / "out.jsonl", [build_step("exact_dedup"), build_step("near_dedup")],
                    tmp_path / "rejects.jsonl", progress=bar, batch_bytes=8_000)
    phases = [e[1:] for e in bar.events if e[0] == "phase"]
    assert any(p[0].endswith("deciding") for p in phases) and phases[-1][0] == "writing"
    spilled = phases[-1][1]
    assert 300 <= spilled <= 400 and bar.advanced("writing") == spilled
    assert done.rows_out <= 300


def test_the_mix_shows_reading_drawing_and_writing(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in _rows(50)), encoding="utf-8")
    b.write_text("".join(json.dumps(r) + "\n" for r in _rows(30)), encoding="utf-8")
    bar = Recorder()
    params = MixParams(sources=[MixSourceSpec(path=str(a)), MixSourceSpec(path=str(b))], total=40)
    with RejectsWriter(tmp_path / "r.jsonl") as rejected:
        result = stream_mix(params, tmp_path / "mix.jsonl", "canonical", rejected, progress=bar)
    phases = [e[1] for e in bar.events if e[0] == "phase"]
    assert phases == ["reading a", "reading b", "drawing", "writing"]
    assert bar.advanced("writing") == result.rows_out == 40


def test_a_plain_function_is_progress_too(tmp_path):
    path = tmp_path / "data.parquet"
    pl.DataFrame(_rows(100)).write_parquet(path)
    seen = []
    run_file(path, tmp_path / "o.jsonl", [build_step("exact_dedup"), build_step("near_dedup")],
             tmp_path / "r.jsonl", progress=seen.append)
    assert sum(seen) >= 100


def test_a_disabled_bar_prints_nothing(capsys):
    bar = Bar("quiet work", total=10, delay=0, enabled=False)
    bar(5)
    bar.phase("writing", 5)
    bar.close()
    assert capsys.readouterr() == ("", "")
