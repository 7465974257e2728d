"""The filter, dedup, decontaminate and steps commands, end to end on files."""

from __future__ import annotations

import json

from sftdata.rawrows import read_rows


def rows(path):
    return [r.data for r in read_rows(path)]


def write_alpaca(path, items):
    path.write_text(json.dumps([{"instruction": i, "input": "", "output": o} for i, o in items]),
                    encoding="utf-8")


def test_filter_default_and_config(cli, tmp_path):
    src = tmp_path / "in.json"
    write_alpaca(src, [("What is 2+2?", "4"), ("Feelings?", "As an AI language model, I have none."),
                       ("Echo me please now", "echo me please now"), ("写一首诗", "春眠不觉晓，处处闻啼鸟。")])
    out = tmp_path / "out.json"
    res = cli("filter", src, "-o", out)
    assert res.exit_code == 0, res.stderr
    assert [r["instruction"] for r in rows(out)] == ["What is 2+2?", "写一首诗"]
    assert rows(out)[1]["output"] == "春眠不觉晓，处处闻啼鸟。"
    rejects = rows(tmp_path / ".rejects" / "out.rejects.jsonl")
    assert sorted(r["reason"] for r in rejects) == ["ai_boilerplate", "output_equals_input"]
    assert cli("filter", src, "-o", out, "--strict").exit_code == 1
    config = tmp_path / "c.yaml"
    config.write_text("steps:\n  - name: length\n    params: {min_response: 2}\n")
    res = cli("filter", src, "-o", tmp_path / "o2.jsonl", "--config", config, "--to", "sharegpt",
              "--rejects", tmp_path / "rj.jsonl")
    assert res.exit_code == 0
    assert len(rows(tmp_path / "o2.jsonl")) == 3 and "conversations" in rows(tmp_path / "o2.jsonl")[0]
    assert [r["reason"] for r in rows(tmp_path / "rj.jsonl")] == ["too_short:response_words"]
    bad = cli("filter", src, "-o", out, "--config", tmp_path / "missing.yaml")
    assert bad.exit_code == 2 and "missing.yaml" in bad.stderr


def test_dedup_command(cli, tmp_path):
    src = tmp_path / "in.jsonl"
    text = "the quick brown fox jumps over the lazy dog near the river bank on a sunny day " * 2
    lines = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
             for q, a in [("Tell a story", text), ("tell a story!", text.upper()),
                          ("Tell a story", text.replace("sunny", "rainy", 1)), ("Other", "Different.")]]
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "out.jsonl"
    assert cli("dedup", src, "-o", out, "--exact-only").exit_code == 0
    assert len(rows(out)) == 3
    assert cli("dedup", src, "-o", out).exit_code == 0
    assert len(rows(out)) == 2
    rejects = rows(tmp_path / ".rejects" / "out.rejects.jsonl")
    assert [r["reason"] for r in rejects] == ["exact_duplicate", "near_duplicate"]
    assert all(r["detail"]["duplicate_of"] for r in rejects)
    assert cli("dedup", src, "-o", out, "--threshold", "0.99").exit_code == 0
    assert len(rows(out)) == 3


def test_decontaminate_command(cli, tmp_path, realworld):
    evalset = tmp_path / "eval.json"
    data = json.loads((realworld / "alpaca_en_demo.json").read_text())
    evalset.write_text(json.dumps(data[:10]))
    out = tmp_path / "clean.json"
    res = cli("decontaminate", realworld / "alpaca_en_demo.json", "-o", out, "--against", evalset)
    assert res.exit_code == 0, res.stderr
    rejects = rows(tmp_path / ".rejects" / "clean.rejects.jsonl")
    assert len(rejects) >= 8
    assert all(r["detail"]["eval_set"] == "eval" and r["detail"]["ngram"] for r in rejects)
    assert len(rows(out)) == len(data) - len(rejects)


def test_steps_lists_every_step_with_params(cli):
    res = cli("steps")
    assert res.exit_code == 0
    for name in ("length", "repetition", "refusal", "language", "exact_dedup", "near_dedup",
                 "decontaminate", "self_instruct", "blocklist", "regex"):
        assert f"{name}:" in res.stdout
    assert "num_perm (default 128)" in res.stdout
    as_json = json.loads(cli("steps", "--json").stdout)
    assert "threshold" in as_json["near_dedup"]["params"]["properties"]


def test_commands_on_the_real_world_files(cli, tmp_path, realworld):
    for name in ("alpaca_zh_demo.json", "glaive_toolcall_en_demo.json", "v1_sft_demo.jsonl"):
        for command in ("filter", "dedup"):
            out = tmp_path / f"{command}_{name}"
            res = cli(command, realworld / name, "-o", out)
            assert res.exit_code == 0, (command, name, res.stderr)
            assert 0 < len(rows(out)) <= len(rows(realworld / name))


def test_bad_option_values_are_one_line_errors(cli, tmp_path):
    src = tmp_path / "in.json"
    write_alpaca(src, [("a question", "an answer")])
    res = cli("dedup", src, "-o", tmp_path / "o.json", "--fields", "everything")
    assert res.exit_code == 2 and "fields" in res.stderr
    res = cli("decontaminate", src, "-o", tmp_path / "o.json", "--against", src, "-n", "1")
    assert res.exit_code == 2 and res.stderr.startswith("error: decontaminate: n:")


def test_filter_configs_take_the_recipe_step_grammar_and_the_old_one_with_a_note(cli, tmp_path):
    src = tmp_path / "in.json"
    write_alpaca(src, [("What is 2+2?", "4"), ("Feelings?", "As an AI language model, I have none."),
                       ("Tell me a long story about it", "Once upon a time.")])
    new = tmp_path / "new.yaml"
    new.write_text("steps:\n  - refusal\n  - length: {min_response: 2}\n")
    old = tmp_path / "old.yaml"
    old.write_text("steps:\n  - name: refusal\n  - name: length\n    params: {min_response: 2}\n")
    results = {}
    for config in (new, old):
        out = tmp_path / f"{config.stem}.json"
        results[config.stem] = cli("filter", src, "-o", out, "--config", config)
        assert results[config.stem].exit_code == 0, results[config.stem].stderr
    assert rows(tmp_path / "new.json") == rows(tmp_path / "old.json") and len(rows(tmp_path / "new.json")) == 1
    assert "old `- name: x`" in results["old"].stderr and "old `- name: x`" not in results["new"].stderr


def test_json_summary_for_scripts(cli, tmp_path):
    src = tmp_path / "in.json"
    write_alpaca(src, [("What is 2+2?", "4"), ("What is 2+2?", "4")])
    res = cli("dedup", src, "-o", tmp_path / "out.jsonl", "--exact-only", "--json")
    summary = json.loads(res.stdout)
    assert (summary["records_in"], summary["records_out"], summary["rejected_by_reason"]) == \
        (2, 1, {"exact_duplicate": 1})
    quiet = cli("dedup", src, "-o", tmp_path / "out.jsonl", "--exact-only", "--quiet")
    assert quiet.exit_code == 0 and quiet.stdout == "" and "records in" not in quiet.stderr
