"""``sftdata audit`` end to end, on generated files and on the real-world data."""

from __future__ import annotations

import json

import pytest

from sftdata.convert import read_canonical
from tests.audit.conftest import write_json


@pytest.fixture
def two_files(tmp_path):
    alpaca = write_json(tmp_path / "al.json", [
        {"instruction": f"Write a haiku about item {i}", "input": "" if i % 2 else "ctx",
         "output": f"haiku {i}"} for i in range(10)])
    openai = tmp_path / "oa.jsonl"
    openai.write_text("\n".join(json.dumps({"messages": [
        {"role": "user", "content": f"Explain topic {i}"},
        {"role": "assistant", "content": f"Topic {i} is simple."}]}) for i in range(6))
        + "\nnot json\n", encoding="utf-8")
    return alpaca, openai


def test_audit_writes_html_and_json(cli, tmp_path, two_files):
    html, stats_path = tmp_path / "out" / "report.html", tmp_path / "out" / "stats.json"
    result = cli("audit", *two_files, "--html", html, "--json", stats_path, "--samples", "3", "--seed", "7")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(stats_path.read_text(encoding="utf-8"))
    assert stats["records"] == 16
    assert stats["formats"] == {"alpaca": 10, "openai": 6}
    assert stats["read_rejects"] == {"bad_json": 1}
    assert stats["empty_input"]["empty"] == 5
    assert len(stats["samples"]) == 3
    assert stats["leading_words"]["top"][0] == {
        "word": "write", "count": 10, "objects": [{"word": "haiku", "count": 10}]}
    assert "<svg" in html.read_text(encoding="utf-8")
    again = tmp_path / "again.json"
    assert cli("audit", *two_files, "--json", again, "--samples", "3", "--seed", "7").exit_code == 0
    assert json.loads(again.read_text())["samples"] == stats["samples"]


def test_audit_defaults_to_audit_html(cli, tmp_path, two_files, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("audit", two_files[1]).exit_code == 0
    assert (tmp_path / "audit.html").is_file()


@pytest.mark.parametrize("args, message", [
    (["--from", "yaml"], "is not one of 'alpaca'"),  # a choice: --help lists them
    (["--tokenizer", "/nonexistent/tok"], "cannot load a tokenizer"),
])
def test_audit_bad_options_are_one_line_errors(cli, tmp_path, two_files, args, message):
    result = cli("audit", two_files[1], "--json", tmp_path / "s.json", *args)
    assert result.exit_code == 2 and message in result.stderr


def test_audit_missing_file(cli, tmp_path):
    result = cli("audit", tmp_path / "nope.jsonl", "--json", tmp_path / "s.json")
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_audit_on_realworld_files(cli, realworld, tmp_path):
    files = sorted(p for p in realworld.iterdir() if p.suffix in (".json", ".jsonl"))
    out = tmp_path / "stats.json"
    result = cli("audit", *files, "--json", out, "--html", tmp_path / "r.html")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(out.read_text(encoding="utf-8"))
    assert stats["records"] == sum(read_canonical(f).frame.height for f in files)
    assert stats["empty_input"]["by_source"]["alpaca_en_demo.json"]["empty"] == 587  # SOURCES.md
    assert stats["conversations"]["tools"]["records_with_tool_calls"] > 0
    words = [t["word"] for t in stats["leading_words"]["top"]]
    assert any("\u4e00" <= w[0] <= "\u9fff" for w in words), words  # Chinese leading words
    zh = stats["lengths"]["instruction"]["tokens"]
    assert zh["max"] > 0


def test_audit_counts_tokens_with_a_local_tokenizer(cli, tmp_path, two_files):
    pytest.importorskip("transformers", reason="--tokenizer needs transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # A word-level tokenizer that splits punctuation off: "Topic 3 is simple." = 5 tokens.
    vocab = {"[UNK]": 0}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = tmp_path / "tok"
    PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]").save_pretrained(folder)
    out = tmp_path / "s.json"
    result = cli("audit", two_files[1], "--json", out, "--tokenizer", folder)
    assert result.exit_code == 0, result.stderr
    lengths = json.loads(out.read_text())["lengths"]
    assert lengths["token_unit"] == f"tokens ({folder})"
    assert lengths["response"]["tokens"]["min"] == lengths["response"]["tokens"]["max"] == 5
    assert lengths["instruction"]["tokens"]["max"] == 3  # "Explain topic 5"
