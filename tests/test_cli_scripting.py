"""Every command a script runs reports the same two ways: ``--json`` prints one JSON
object on stdout (nothing else goes there), ``--quiet`` prints no summary at all.
Through the installed ``sftdata`` command, as a shell script would call it."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def data(tmp_path):
    rows = [{"instruction": f"Name a colour, number {i}", "output": f"Colour {i} is blue"} for i in range(20)]
    rows.append({"instruction": "broken"})  # no output: a reject
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"instruction": f"Say {i}", "output": f"{i}"}) + "\n" for i in range(10)),
                       encoding="utf-8")
    return path, general


def _json(done):
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)  # the whole of stdout is one object


def test_validate_json_lists_the_invalid_records(sftdata_cmd, data):
    path, _ = data
    out = _json(sftdata_cmd("validate", path, "--json"))
    assert out["records_in"] == 21 and out["records_out"] == 20
    assert out["invalid"] == [{"location": 21, "reason": "missing_field:output"}]
    quiet = sftdata_cmd("validate", path, "-q")
    assert quiet.returncode == 1  # invalid records still fail the check
    assert quiet.stdout.strip() == f"{path}:21: missing_field:output" and quiet.stderr == ""


def test_mix_json_has_the_report(sftdata_cmd, data, tmp_path):
    path, general = data
    out = _json(sftdata_cmd("mix", "-s", f"domain={path}", "-s", f"general={general}", "--ratio", "domain=0.5",
                            "-n", "20", "-o", tmp_path / "mix.jsonl", "--json"))
    assert out["records_out"] == 20
    assert {s["name"] for s in out["mix"]["sources"]} == {"domain", "general"}
    quiet = sftdata_cmd("mix", "-s", path, "-s", general, "-o", tmp_path / "m2.jsonl", "-q")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_audit_json_dash_prints_the_statistics(sftdata_cmd, data, tmp_path):
    path, _ = data
    out = _json(sftdata_cmd("audit", path, "--json", "-", cwd=tmp_path))
    assert out["records"] == 20
    assert not (tmp_path / "audit.html").exists()  # stdout only: no report file unless asked
    quiet = sftdata_cmd("audit", path, "--html", tmp_path / "r.html", "-q")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    assert (tmp_path / "r.html").stat().st_size > 0
    bad = sftdata_cmd("audit", path, "--from", "nope")
    assert bad.returncode == 2 and "alpaca" in bad.stderr  # --from lists its choices


def test_run_json_is_the_summary(sftdata_cmd, data, tmp_path):
    path, _ = data
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: scripted\ninputs:\n  - path: {path}\nsteps:\n  - exact_dedup: {{}}\n"
                      "output:\n  format: sharegpt\n", encoding="utf-8")
    checked = _json(sftdata_cmd("run", recipe, "--check", "--json", cwd=tmp_path))
    assert checked["ok"] is True and checked["steps"] == 1
    out = _json(sftdata_cmd("run", recipe, "--no-train", "--json", cwd=tmp_path))
    assert out["records"] == 20 and any(s["step"] == "exact_dedup" for s in out["stages"])
    quiet = sftdata_cmd("run", recipe, "--no-train", "-q", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_quiet_and_json_together_is_one_line_error(sftdata_cmd, data):
    path, _ = data
    done = sftdata_cmd("validate", path, "-q", "--json")
    assert done.returncode != 0 and done.stderr.strip().splitlines() == ["error: --quiet and --json: pick one"]
