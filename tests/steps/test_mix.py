"""Mixing: exact proportions, determinism, upsampling, caps, temperature, and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sftdata.convert import read_canonical
from sftdata.errors import UserError
from sftdata.records import frame_from_records
from sftdata.steps.mix import MixSource, apportion, mix_sources
from sftdata.steps.mix_recipe import MixParams, MixSourceSpec, run_mix


def make_source(name: str, n: int, weight: float | None = None) -> MixSource:
    records = [
        {"id": f"{name}-{i}", "source": "orig.jsonl", "meta": {"i": i},
         "messages": [{"role": "user", "content": f"{name} question {i}"},
                      {"role": "assistant", "content": f"answer {i}"}]}
        for i in range(n)
    ]
    return MixSource(name, frame_from_records(records), weight)


def taken(frame) -> Counter:
    return Counter(frame["source"].to_list())


@pytest.mark.parametrize("total", [1, 7, 100, 333, 1000])
@pytest.mark.parametrize("ratios", [{"a": 0.5, "b": 0.25, "c": 0.25}, {"a": 0.9, "b": 0.07, "c": 0.03},
                                    {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}])
def test_ratios_are_exact_to_one_record(total, ratios):
    sources = [make_source("a", 400), make_source("b", 300), make_source("c", 200)]
    frame, report = mix_sources(sources, total=total, ratios=ratios, seed=1)
    assert frame.height == total == report.total
    counts = taken(frame)
    for name, ratio in ratios.items():
        assert abs(counts[name] - total * ratio) < 1
        assert next(s for s in report.sources if s.name == name).taken == counts[name]


def test_unnamed_sources_share_the_remainder_by_weight():
    sources = [make_source("dom", 500), make_source("g1", 200, weight=3), make_source("g2", 200, weight=1)]
    frame, _ = mix_sources(sources, total=400, ratios={"dom": 0.5})
    assert taken(frame) == {"dom": 200, "g1": 150, "g2": 50}


def test_without_total_takes_the_largest_mix_needing_no_upsampling():
    sources = [make_source("big", 1000), make_source("small", 30)]
    frame, report = mix_sources(sources, ratios={"big": 0.75, "small": 0.25}, seed=3)
    assert taken(frame) == {"big": 90, "small": 30}
    assert all(s.upsampled == 0 for s in report.sources)
    assert frame["id"].n_unique() == frame.height
    assert any("no upsampling" in note for note in report.notes)


def test_natural_mix_takes_every_record_once_shuffled_and_renamed():
    a, b = make_source("a", 50), make_source("b", 50)
    frame, report = mix_sources([a, b], seed=0)
    assert sorted(frame["id"].to_list()) == sorted(a.frame["id"].to_list() + b.frame["id"].to_list())
    # Each record's source is its mix source's name (not the file it was read from).
    assert set(frame["source"]) == {"a", "b"}
    assert all(frame.filter(frame["source"] == "a")["id"].str.starts_with("a-"))
    # Shuffled: the sources are interleaved, not one block after the other.
    firsts = frame["source"].to_list()[:50]
    assert 10 < firsts.count("a") < 40
    assert report.mode == "natural" and report.total == 100


def test_same_seed_same_mix_and_different_seed_different_mix():
    sources = [make_source("a", 300), make_source("b", 300)]
    first, _ = mix_sources(sources, total=200, ratios={"a": 0.5, "b": 0.5}, seed=7)
    again, _ = mix_sources(sources, total=200, ratios={"a": 0.5, "b": 0.5}, seed=7)
    other, _ = mix_sources(sources, total=200, ratios={"a": 0.5, "b": 0.5}, seed=8)
    assert first["id"].to_list() == again["id"].to_list()
    assert set(first["id"]) != set(other["id"])
    assert first["id"].to_list() != other["id"].to_list()


def test_each_source_has_its_own_random_stream():
    a = make_source("a", 200)
    alone, _ = mix_sources([a], caps={"a": 20}, seed=5)
    with_b, _ = mix_sources([a, make_source("b", 80)], caps={"a": 20}, seed=5)
    assert set(alone["id"]) == set(with_b.filter(with_b["source"] == "a")["id"])


def test_small_source_is_upsampled_evenly_and_reported():
    sources = [make_source("big", 1000), make_source("tiny", 7)]
    frame, report = mix_sources(sources, total=200, ratios={"big": 0.9, "tiny": 0.1}, seed=2)
    tiny = Counter(frame.filter(frame["source"] == "tiny")["id"].to_list())
    assert sum(tiny.values()) == 20 and len(tiny) == 7
    # Whole copies first, then a sample without replacement: 20 = 2 * 7 + 6.
    assert sorted(tiny.values()) == [2] + [3] * 6
    row = {s.name: s for s in report.sources}
    assert row["tiny"].upsampled == 13 and row["tiny"].unique == 7
    assert row["big"].upsampled == 0 and row["big"].unique == 180
    assert any(note.startswith("tiny: upsampled") for note in report.notes)


def test_no_replacement_refuses_to_upsample():
    sources = [make_source("big", 1000), make_source("tiny", 7)]
    with pytest.raises(UserError, match="tiny.*7 records.*needs 20"):
        mix_sources(sources, total=200, ratios={"big": 0.9, "tiny": 0.1}, replacement="never")


def test_always_draws_with_replacement():
    frame, report = mix_sources([make_source("a", 100)], total=100, replacement="always", seed=0)
    assert frame.height == 100
    assert report.sources[0].upsampled == 100 - frame["id"].n_unique() > 0


def test_caps_bound_natural_and_temperature_mixes():
    sources = [make_source("big", 5000), make_source("mid", 300), make_source("small", 40)]
    frame, report = mix_sources(sources, caps={"big": 500}, seed=0)
    assert taken(frame) == {"big": 500, "mid": 300, "small": 40}
    assert [s.capped for s in report.sources] == [True, False, False]
    # With size-based shares a cap also caps the size the share is computed from
    # (T5's artificial limit): big counts as 300 records, like mid.
    frame, _ = mix_sources(sources, total=600, temperature=1.0, caps={"big": 300})
    counts = taken(frame)
    assert counts["big"] == counts["mid"] and sum(counts.values()) == 600
    assert abs(counts["small"] - 600 * 40 / 640) < 1 and counts["big"] <= 300


def test_cap_with_ratios_and_total_fills_from_the_others():
    sources = [make_source("a", 1000), make_source("b", 1000)]
    frame, report = mix_sources(sources, total=100, ratios={"a": 0.8, "b": 0.2}, caps={"a": 30})
    assert taken(frame) == {"a": 30, "b": 70}
    assert any("a: capped" in note for note in report.notes)
    frame, report = mix_sources(sources, total=100, caps={"a": 30, "b": 20}, ratios={"a": 0.5})
    assert frame.height == 50 and any("caps allow only 50" in n for n in report.notes)


def test_temperature_flattens_towards_uniform():
    sizes = {"a": 1600, "b": 400, "c": 100}
    sources = [make_source(n, s) for n, s in sizes.items()]
    natural = taken(mix_sources(sources, total=700, temperature=1.0)[0])
    assert all(abs(natural[n] - 700 * s / 2100) < 1 for n, s in sizes.items())
    frame, report = mix_sources(sources, total=700, temperature=2.0)
    counts = taken(frame)
    # size ** (1/2): 40 : 20 : 10, i.e. 4/7, 2/7, 1/7.
    assert counts == {"a": 400, "b": 200, "c": 100}
    assert report.mode == "temperature" and report.sources[2].target_fraction == pytest.approx(1 / 7, abs=1e-5)
    flat = taken(mix_sources(sources, total=300, temperature=1000.0)[0])
    assert max(flat.values()) - min(flat.values()) <= 2


def test_weights_set_relative_shares():
    sources = [make_source("a", 500, weight=2), make_source("b", 500, weight=1)]
    frame, report = mix_sources(sources, total=300)
    assert taken(frame) == {"a": 200, "b": 100} and report.mode == "weight"


@pytest.mark.parametrize("kwargs, message", [
    ({"ratios": {"a": 0.5, "b": 0.2}}, "sum to 0.7"),
    ({"ratios": {"a": 0.5}, "temperature": 2.0}, "one way only"),
    ({"ratios": {"zzz": 0.5}}, "unknown source 'zzz'"),
    ({"caps": {"zzz": 5}}, "unknown source 'zzz'"),
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"ratios": {"a": 1.5, "b": 0.0}}, "between 0 and 1"),
])
def test_bad_options_are_one_line_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        mix_sources([make_source("a", 10), make_source("b", 10)], **kwargs)


def test_duplicate_names_and_empty_sources_are_errors():
    with pytest.raises(UserError, match="distinct name"):
        mix_sources([make_source("a", 3), make_source("a", 3)])
    with pytest.raises(UserError, match="empty"):
        mix_sources([make_source("a", 10), make_source("b", 0)], total=10, ratios={"a": 0.5})


def test_apportion_never_misses_by_a_record():
    for total in range(0, 60):
        shares = [0.37, 0.21, 0.42]
        counts = apportion(total, shares)
        assert sum(counts) == total
        assert all(abs(c - total * s) < 1 for c, s in zip(counts, shares))


@pytest.mark.parametrize("module", ["sftdata.steps.mix", "sftdata.cli.mix_command"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def alpaca_rows(prefix, n):
    return [{"instruction": f"{prefix} task {i}", "input": "", "output": f"done {i}"} for i in range(n)]


def sharegpt_rows(prefix, n):
    return [{"conversations": [{"from": "human", "value": f"{prefix} {i}"},
                               {"from": "gpt", "value": f"reply {i}"}]} for i in range(n)]


def test_run_mix_reads_files_and_the_recipes_own_records(tmp_path):
    write_jsonl(tmp_path / "general.jsonl", alpaca_rows("g", 40) + [{"instruction": "no output"}])
    main = make_source("x", 60).frame
    params = MixParams.model_validate({
        "sources": [{"ratio": 0.75}, {"path": "general.jsonl", "cap": 100}], "total": 80, "seed": 3,
    })
    result = run_mix(params, base_dir=tmp_path, main=main)
    assert taken(result.frame) == {"main": 60, "general": 20}
    assert [r["reason"] for r in result.rejects] == ["missing_field:output"]
    assert result.report.step_report().rows_out == 80
    with pytest.raises(Exception, match="extra"):
        MixSourceSpec.model_validate({"path": "a.jsonl", "wieght": 2})


def test_cli_mix_exact_ratios_summary_and_rejects(tmp_path, cli):
    dom = write_jsonl(tmp_path / "domain.jsonl", alpaca_rows("d", 300) + [{"instruction": "x"}])
    gen = write_jsonl(tmp_path / "general.jsonl", sharegpt_rows("g", 25))
    out = tmp_path / "mixed.jsonl"
    result = cli("mix", "-o", out, "--source", dom, "--source", gen, "--total", "200",
                 "--ratio", "general=0.25", "--seed", "4", "--report", tmp_path / "mix.json")
    assert result.exit_code == 0, result.stderr
    records = read_canonical(out).frame
    assert taken(records) == {"domain": 150, "general": 50}
    for text in ("available", "taken", "upsampled", "general", "25.0%", "general: upsampled"):
        assert text in result.stderr
    rejects = [json.loads(line) for line in (tmp_path / ".rejects" / "mixed.rejects.jsonl").read_text().splitlines()]
    # The unreadable record, then the 150 domain records the mix did not draw.
    assert [r["reason"] for r in rejects] == ["missing_field:output"] + ["not_sampled"] * 150
    unsampled = {r["record"]["id"] for r in rejects[1:]}
    assert {r["source"] for r in rejects[1:]} == {"domain"} and len(unsampled) == 150
    assert not unsampled & set(records["id"].to_list())
    assert json.loads((tmp_path / "mix.json").read_text())["sources"][1]["upsampled"] == 25
    again = cli("mix", "-o", tmp_path / "again.jsonl", "--source", dom, "--source", gen,
                "--total", "200", "--ratio", "general=0.25", "--seed", "4")
    assert (tmp_path / "again.jsonl").read_text() == out.read_text() and again.exit_code == 0


def test_cli_weights_names_caps_and_alpaca_output(tmp_path, cli):
    a = write_jsonl(tmp_path / "a.jsonl", alpaca_rows("a", 100))
    b = write_jsonl(tmp_path / "b.jsonl", alpaca_rows("b", 100))
    out = tmp_path / "out.json"
    result = cli("mix", "-o", out, "-s", f"first={a}:3", "-s", f"{b}:1", "--total", "40", "--to", "alpaca")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(out.read_text())
    assert Counter(r["instruction"][0] for r in rows) == {"a": 30, "b": 10}
    result = cli("mix", "-o", tmp_path / "capped.jsonl", "-s", a, "-s", b, "--cap", "a=10")
    assert taken(read_canonical(tmp_path / "capped.jsonl").frame) == {"a": 10, "b": 100}


def test_cli_errors_are_one_line(tmp_path, cli):
    a = write_jsonl(tmp_path / "a.jsonl", alpaca_rows("a", 100))
    b = write_jsonl(tmp_path / "b.jsonl", alpaca_rows("b", 5))
    result = cli("mix", "-o", tmp_path / "o.jsonl", "-s", a, "-s", b, "--total", "100",
                 "--ratio", "b=0.5", "--no-replacement")
    assert result.exit_code == 2 and "--no-replacement" in result.stderr
    result = cli("mix", "-o", tmp_path / "o.jsonl", "-s", a, "--ratio", "c=0.5")
    assert result.exit_code == 2 and "unknown source 'c'" in result.stderr
    result = cli("mix", "-o", tmp_path / "o.jsonl", "-s", a, "--cap", "a=lots")
    assert result.exit_code == 2 and "NAME=N" in result.stderr
    assert not (tmp_path / "o.jsonl").exists()


BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "forgetting" / "run.py"


@pytest.mark.slow
def test_forgetting_benchmark_smallest_configuration(tmp_path):
    """The benchmark script end to end on the real bundled model, in its tiny configuration."""
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    pytest.importorskip("matplotlib")
    if not BENCHMARK.is_file():
        pytest.skip("benchmarks/ not beside this copy of the tests")
    done = subprocess.run([sys.executable, str(BENCHMARK), "--smallest", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["general_share"] for r in results["runs"]] == [0.0, 0.5]
    for run in results["runs"]:
        assert run["steps"] == results["settings"]["steps"]
        assert all(math.isfinite(v) and v > 0 for v in run["after"].values())
        # The mix fed to the trainer had the asked-for share of general records.
        assert run["taken"]["general"] == round(run["general_share"] * results["settings"]["records"])
    table = (tmp_path / "results.md").read_text()
    assert "| 50% |" in table and "forgetting" in table
    assert (tmp_path / "forgetting.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_streamed_mix_equals_the_in_memory_mix(tmp_path, monkeypatch):
    """`sftdata mix` spills its sources and gathers bucket by bucket: the same records in
    the same order as mix_sources, with every read reject kept."""
    import sftdata.steps.mix_recipe as mix_recipe
    from sftdata.convert import RejectsWriter, write_records
    from sftdata.steps.mix_recipe import MixParams, MixSourceSpec, run_mix, stream_mix

    for name, n in (("a", 500), ("b", 120)):
        rows = [json.dumps({"instruction": f"{name} q{i}", "output": f"answer {i}"}) for i in range(n)]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(rows + ["not json"]) + "\n", encoding="utf-8")
    params = MixParams(sources=[MixSourceSpec(path="a.jsonl"), MixSourceSpec(path="b.jsonl", ratio=0.4)],
                       total=900, seed=3)
    in_memory = run_mix(params, base_dir=tmp_path)
    write_records(in_memory.frame, tmp_path / "memory.jsonl", "canonical")
    monkeypatch.setattr(mix_recipe, "BUCKET_ROWS", 50)  # many buckets and spills
    monkeypatch.setattr(mix_recipe, "BUFFERED_ROWS", 70)
    with RejectsWriter(tmp_path / "rejects.jsonl") as rejected:
        streamed = stream_mix(params, tmp_path / "streamed.jsonl", "canonical", rejected, base_dir=tmp_path)
    assert (tmp_path / "streamed.jsonl").read_text() == (tmp_path / "memory.jsonl").read_text()
    assert (streamed.rows_in, streamed.rows_out) == (in_memory.rows_in, 900)
    assert rejected.counts == {"bad_json": 2}
    assert streamed.report.sources == in_memory.report.sources
