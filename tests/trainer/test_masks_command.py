"""`sftdata masks` on the real-world files with the bundled model, and `sftdata train`
refusing a template that drops tool calls. The installed command runs in a subprocess in
one fast test and in the slow ones; the rest go through the same app in process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
from trainer_helpers import write_jsonl  # noqa: E402

GLAIVE = "glaive_toolcall_en_demo.json"
REALWORLD_FILES = ["alpaca_en_demo.json", "alpaca_zh_demo.json", GLAIVE, "identity.json", "kto_en_demo.json",
                   "v1_sft_demo.jsonl"]


def sftdata(*args, timeout=600) -> subprocess.CompletedProcess:
    """The installed `sftdata` command (the console script beside this interpreter)."""
    exe = os.path.join(os.path.dirname(sys.executable), "sftdata")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TQDM_DISABLE": "1", "COLUMNS": "200"})


def _records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _glaive_checks(run, realworld, tmp_path):
    own = run("masks", realworld / GLAIVE, "--json", "-n", "0")
    assert own.returncode == 0, own.stderr
    rows = _records(own.stdout)
    assert len(rows) == 300 and {"id", "trained", "dropped", "warnings"} <= rows[0].keys()
    assert sum(w["code"] == "tool_calls_not_rendered" for r in rows for w in r["warnings"]) == 211
    assert "tool_calls_not_rendered: 211" in own.stderr and "chatml-tools" in own.stderr
    assert not any("<tool_call>" in run for r in rows for run in r["trained"])

    page = tmp_path / "masks.html"
    fixed = run("masks", realworld / GLAIVE, "--chat-template", "chatml-tools", "--json", "-n", "2",
                "--html", page, "--strict")
    assert fixed.returncode == 0, fixed.stderr
    rows = _records(fixed.stdout)
    calls = [run for r in rows for run in r["trained"] if run.startswith("<tool_call>")]
    assert len(calls) == 211 and all(run.endswith("</tool_call><|im_end|>") for run in calls)
    assert '"name": "search_recipes"' in "".join(calls)
    assert not any(r["warnings"] for r in rows)
    assert [r["dropped"] for r in rows if r["dropped"]] == ["too_long"]  # one record longer than max_length
    assert 'class="trained"' in page.read_text()


def test_glaive_tool_calls_are_shown_untrained_then_trained_with_a_template_that_writes_them(realworld, tmp_path,
                                                                                                 cli):
    _glaive_checks(_in_process(cli), realworld, tmp_path)


@pytest.mark.slow
def test_glaive_tool_calls_through_the_installed_command(realworld, tmp_path):
    _glaive_checks(sftdata, realworld, tmp_path)


def _in_process(cli):
    """The `cli` fixture with subprocess.run's result shape (returncode, stdout, stderr)."""
    def run(*args):
        result = cli(*args)
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)
    return run


def test_terminal_view_highlights_trained_tokens_and_counts_the_file(realworld):
    result = sftdata("masks", realworld / "identity.json", "-n", "1")
    assert result.returncode == 0, result.stderr
    assert "records: 91   kept: 91" in result.stdout and "turns trained: 91" in result.stdout
    assert "Hello! I am {{name}}" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", REALWORLD_FILES)
def test_masks_works_on_every_real_world_file_with_the_bundled_model(realworld, tmp_path, name):
    result = sftdata("masks", realworld / name, "--json", "-n", "2", "--html", tmp_path / "m.html")
    assert result.returncode == 0, result.stderr
    rows = _records(result.stdout)
    kept = [r for r in rows if not r["dropped"]]
    assert rows and len(kept) >= 0.99 * len(rows)
    assert all(r["trained"] for r in kept)
    assert f"records: {len(rows):,}" in result.stderr


def test_html_page_escapes_record_text(tmp_path, cli):
    data = write_jsonl(tmp_path / "x.jsonl", [{"messages": [
        {"role": "user", "content": "<script>alert(1)</script>"},
        {"role": "assistant", "content": "<img src=x onerror=alert(2)> & done"}]}])
    page = tmp_path / "p.html"
    result = cli("masks", data, "--html", page, "-n", "1")
    assert result.exit_code == 0, result.stderr
    html = page.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "&lt;img src=x onerror=alert(2)&gt; &amp; done" in html and "<img" not in html


def _refusal_checks(run, realworld, tmp_path, model_dir):
    rows = json.loads((realworld / GLAIVE).read_text())[:12]
    data = tmp_path / "glaive.json"
    data.write_text(json.dumps(rows))
    out = tmp_path / "run"
    result = run("train", data, "--model", model_dir, "-o", out, "--max-steps", "1")
    assert result.returncode == 2
    message = result.stderr
    assert "tool_calls_not_rendered" in message and "turn" in message and "record" in message
    assert "--chat-template chatml-tools" in message and "--force" in message and "sftdata masks" in message
    assert not (out / "adapter_model.safetensors").exists()
    ok = run("train", data, "--model", model_dir, "-o", out, "--max-steps", "1",
             "--chat-template", "chatml-tools", "--set", "progress=false", "--set", "num_samples=0",
             "--max-length", "512")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "for tool in tools" in (out / "chat_template.jinja").read_text()  # saved with the template it used


def test_train_refuses_a_template_that_drops_tool_calls(realworld, tmp_path, tiny_model_dir, cli):
    _refusal_checks(_in_process(cli), realworld, tmp_path, tiny_model_dir)


@pytest.mark.slow
def test_train_refuses_through_the_installed_command(realworld, tmp_path, tiny_model_dir):
    _refusal_checks(sftdata, realworld, tmp_path, tiny_model_dir)


def test_masks_loads_only_a_tokenizer_folder_and_takes_mask_settings(smol_tokenizer, tmp_path, cli):
    folder = tmp_path / "tokenizer-only"
    smol_tokenizer.save_pretrained(folder)  # no config.json, no weights
    data = write_jsonl(tmp_path / "r.jsonl", [{"id": "r1", "messages": [
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<think>sum</think>4"},
        {"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6"}]}])
    qwen3 = str(Path(__file__).parent / "templates" / "qwen3.jinja")
    result = cli("masks", data, "--model", folder, "--chat-template", qwen3, "--json", "-n", "0")
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["id"] == "r1" and row["warnings"] == []  # the earlier turn is split off with its reasoning
    assert sorted(row["trained"]) == ["<think>\n\n</think>\n\n6<|im_end|>", "<think>\nsum\n</think>\n\n4<|im_end|>"]
    never = cli("masks", data, "--model", folder, "--chat-template", qwen3, "--json", "-n", "0",
                "--set", "split_turns=never", "--train-on", "last")
    row = json.loads(never.stdout)
    assert row["trained"] == ["<think>\n\n</think>\n\n6<|im_end|>"]
    bad = cli("masks", data, "--set", "learning_rate=1")
    assert bad.exit_code == 2 and "not a mask setting" in bad.stderr
