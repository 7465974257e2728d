"""Steps over a file batch by batch (``sftdata.stream.run_file``) give what the same
steps give on the whole file in memory: row-local filters, two-pass dedup, rejects."""

from __future__ import annotations

import json
import random

import pytest

from sftdata.convert import read_canonical
from sftdata.rawrows import read_rows
from sftdata.steps.base import run_chain
from sftdata.steps.registry import build_step
from sftdata.stream import run_file

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi".split()


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(5)
    rows, good = [], []
    for i in range(1500):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 40)))
        rows.append({"instruction": f"Task {i % 400}", "output": text})
        good.append(rows[-1])
        if i % 7 == 0:  # near and exact copies of earlier rows
            src = rng.choice(good)
            words = src["output"].split()
            words[rng.randrange(len(words))] = "omega"
            rows.append({"instruction": src["instruction"], "output": " ".join(words)})
        if i % 11 == 0:
            rows.append(dict(rng.choice(good)))
        if i % 50 == 0:
            rows.append({"instruction": "Say", "output": "   "})  # a read reject
            rows.append({"instruction": "Repeat after me please", "output": "repeat after me, please"})
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n", encoding="utf-8")
    return path


def in_memory(path, steps):
    read = read_canonical(path)
    return read, run_chain(read.frame, steps)


@pytest.mark.parametrize("names", [["exact_dedup", "near_dedup"], ["empty_turn", "length", "exact_dedup"],
                                   ["exact_dedup", "near_dedup", "echo"]])
def test_batches_give_what_the_whole_file_gives(tmp_path, corpus, names):
    read, whole = in_memory(corpus, [build_step(n) for n in names])
    out, rejects = tmp_path / "out.jsonl", tmp_path / ".rejects" / "out.rejects.jsonl"
    done = run_file(corpus, out, [build_step(n) for n in names], rejects, batch_bytes=8_000)
    assert done.rows_in == read.rows_in
    kept = [r.data for r in read_rows(out)]
    assert len(kept) == whole.kept.height == done.rows_out
    expected = {(rows["id"][i], rows["reason"][i], rows["detail"][i])
                for _, rows in whole.rejected for i in range(rows.height)}
    got = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert {(r["id"], r["reason"], json.dumps(r["detail"]) if r["detail"] else None)
            for r in got if r["stage"] != "read"} == expected
    assert [r["reason"] for r in got if r["stage"] == "read"] == [r["reason"] for r in read.rejects]
    assert [r.rows_out for r in done.reports] == [r.rows_out for r in whole.reports]
    assert sum(done.rejected.values()) == len(got)


def test_step_rejects_carry_the_whole_record(tmp_path, corpus):
    rejects = tmp_path / "r.jsonl"
    run_file(corpus, tmp_path / "o.jsonl", [build_step("exact_dedup")], rejects, batch_bytes=8_000)
    first = json.loads(rejects.read_text().splitlines()[-1])
    assert set(first) == {"source", "location", "stage", "reason", "detail", "id", "record"}
    assert first["record"]["id"] == first["id"] and first["record"]["messages"][0]["role"] == "user"


def test_a_budgeted_select_sees_the_whole_file_not_each_batch(tmp_path):
    """A top-k over batches would keep k per batch; select is not row-local."""
    rows = [{"instruction": f"Task {i}", "output": f"answer {i}", "q": i} for i in range(300)]
    path = tmp_path / "scored.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = run_file(path, out, [build_step("select", {"by": "q", "top": 10})], tmp_path / "rej.jsonl",
                    batch_rows=50, batch_bytes=2_000)
    assert done.rows_out == 10
    kept = [json.loads(line)["q"] for line in out.read_text().splitlines()]
    assert sorted(kept) == list(range(290, 300))
