"""Fitting the tools around sftdata: rejects where loaders do not look, any column layout
read in (``--columns``/``--roles``/``--dataset-info``), pipes and compressed files, Arrow
and Hub inputs, OpenAI's own shape out, and summaries for scripts. Through the installed
``sftdata`` command, the outputs loaded with ``datasets.load_dataset`` as users do."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest

datasets = pytest.importorskip("datasets")


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


ALPACA = [{"instruction": "Add 2 and 2.", "output": "4"}, {"instruction": "Name a colour.", "output": "Blue."}]


# --- finding 3: rejects ---------------------------------------------------------------------

def test_rejects_go_where_loaders_do_not_look(tmp_path, sftdata_cmd):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    src = _jsonl(tmp_path / "in.jsonl", ALPACA + [{"instruction": "no output"}])
    proc = sftdata_cmd("convert", src, "-o", out_dir / "data.jsonl", "--to", "sharegpt")
    assert proc.returncode == 0, proc.stderr
    rejects = out_dir / ".rejects" / "data.rejects.jsonl"
    assert f"rejects: 1 in {rejects}" in proc.stderr
    assert [r["reason"] for r in _rows(rejects)] == ["missing_field:output"]
    # a loader pointed at the folder reads the data only (a rejects file beside it would
    # fail the load: all the data files must have the same columns)
    loaded = datasets.load_dataset("json", data_dir=str(out_dir), split="train")
    assert len(loaded) == 2 and set(loaded.column_names) == {"conversations", "system", "tools"}


def test_no_rejects_file_when_there_is_none(tmp_path, sftdata_cmd):
    src = _jsonl(tmp_path / "in.jsonl", ALPACA)
    stale = tmp_path / ".rejects" / "out.rejects.jsonl"
    first = sftdata_cmd("convert", _jsonl(tmp_path / "bad.jsonl", [{"x": 1, "instruction": "a"}]),
                        "-o", tmp_path / "out.jsonl", "--to", "sharegpt")
    assert first.returncode == 0 and stale.exists()  # sftdata's own file from the first run
    proc = sftdata_cmd("convert", src, "-o", tmp_path / "out.jsonl", "--to", "sharegpt")
    assert proc.returncode == 0 and "rejects: none" in proc.stderr
    assert not stale.exists()  # an earlier run's rejects are not left to be taken for these


# --- finding 4: any layout ---------------------------------------------------------------------

def test_openorca_lmsys_and_custom_tags_map_in(tmp_path, sftdata_cmd):
    orca = _jsonl(tmp_path / "orca.jsonl", [{"id": "niv.1", "system_prompt": "Be brief.", "question": "2+2?",
                                             "response": "4"}])
    lmsys = _jsonl(tmp_path / "lmsys.jsonl", [{"conversation_id": "c1", "model": "vicuna", "conversation": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}])
    tags = _jsonl(tmp_path / "tags.jsonl", [{"dialog": [{"speaker": "person", "text": "hi"},
                                                        {"speaker": "bot", "text": "hello"}]}])
    unmapped = sftdata_cmd("convert", orca, "-o", tmp_path / "x.jsonl", "--to", "openai")
    assert unmapped.returncode == 2 and "--columns" in unmapped.stderr and "--dataset-info" in unmapped.stderr

    for src, options in [(orca, ["--columns", "question=instruction,response=output,system_prompt=system"]),
                         (lmsys, ["--columns", "conversation=messages"]),
                         (tags, ["--columns", "dialog=conversations,speaker=from,text=value",
                                 "--roles", "person=user,bot=assistant"])]:
        out = tmp_path / f"{src.stem}.openai.jsonl"
        proc = sftdata_cmd("convert", src, "-o", out, "--to", "openai", *options)
        assert proc.returncode == 0 and "rejected     0" in proc.stderr, proc.stderr
        (row,) = _rows(out)
        assert [m["role"] for m in row["messages"]][-2:] == ["user", "assistant"]
    assert _rows(tmp_path / "orca.openai.jsonl")[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert _rows(tmp_path / "lmsys.openai.jsonl")[0]["model"] == "vicuna"  # other columns are kept


def test_dataset_info_entry_gives_the_mapping_and_the_file(tmp_path, sftdata_cmd):
    data = _jsonl(tmp_path / "chats.jsonl", [{"dialog": [{"who": "customer", "said": "hi"},
                                                         {"who": "agent", "said": "hello"}], "sys": "Be kind."}])
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps({"chats": {"file_name": "chats.jsonl", "formatting": "sharegpt",
                                          "columns": {"messages": "dialog", "system": "sys"},
                                          "tags": {"role_tag": "who", "content_tag": "said",
                                                   "user_tag": "customer", "assistant_tag": "agent"}}}))
    out = tmp_path / "out.jsonl"
    proc = sftdata_cmd("convert", "--dataset-info", info, "--name", "chats", "-o", out, "--to", "sharegpt")
    assert proc.returncode == 0, proc.stderr
    assert _rows(out) == [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}],
                           "system": "Be kind.", "tools": ""}]
    wrong = sftdata_cmd("convert", "--dataset-info", info, "--name", "nope", "-o", out, "--to", "sharegpt")
    assert wrong.returncode == 2 and "no entry 'nope'" in wrong.stderr


def test_a_mapped_column_beside_one_of_that_name_is_a_reject(tmp_path, cli):
    src = _jsonl(tmp_path / "in.jsonl", [{"question": "a", "instruction": "b", "output": "c"},
                                         {"question": "d", "output": "e"}])
    result = cli("convert", src, "-o", tmp_path / "o.jsonl", "--to", "alpaca", "--columns", "question=instruction")
    assert result.exit_code == 0
    (reject,) = _rows(tmp_path / ".rejects" / "o.rejects.jsonl")
    assert reject["reason"] == "column_conflict:instruction" and reject["location"] == 1


# --- finding 6: pipes, compression, Arrow, the Hub cache --------------------------------------------

def test_stdin_to_stdout(tmp_path, sftdata_cmd):
    src = _jsonl(tmp_path / "in.jsonl", ALPACA)
    proc = sftdata_cmd("convert", "-", "-o", "-", "--to", "openai", input=src.read_text(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["messages"][1]["content"] for line in proc.stdout.splitlines()] == ["4", "Blue."]
    assert "convert stdin (alpaca) -> stdout (openai)" in proc.stderr


def test_gzip_and_zstandard_in_and_out(tmp_path, sftdata_cmd, realworld):
    gz = tmp_path / "glaive.json.gz"
    with gzip.open(gz, "wb") as f:
        f.write((realworld / "glaive_toolcall_en_demo.json").read_bytes())
    zst = tmp_path / "glaive.sharegpt.jsonl.zst"
    assert sftdata_cmd("convert", gz, "-o", zst, "--to", "sharegpt").returncode == 0
    assert zst.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # really Zstandard
    back = tmp_path / "back.jsonl"
    proc = sftdata_cmd("convert", zst, "-o", back, "--to", "sharegpt")
    assert proc.returncode == 0 and "records out  300" in proc.stderr, proc.stderr
    plain = tmp_path / "plain.jsonl"
    assert sftdata_cmd("convert", realworld / "glaive_toolcall_en_demo.json", "-o", plain, "--to", "sharegpt"
                       ).returncode == 0
    assert back.read_bytes() == plain.read_bytes()
    misnamed = tmp_path / "glaive.jsonl"
    shutil.copy(zst, misnamed)
    refused = sftdata_cmd("convert", misnamed, "-o", tmp_path / "m.jsonl", "--to", "sharegpt")
    assert refused.returncode == 2 and "name it glaive.jsonl.zst" in refused.stderr


def test_arrow_files_and_streams(tmp_path, sftdata_cmd):
    frame = pl.DataFrame({"instruction": ["a", "b"], "output": ["c", "d"]})
    frame.write_ipc(tmp_path / "d.arrow")
    frame.write_ipc_stream(tmp_path / "s.arrow")  # what datasets keeps in its cache
    for name in ("d.arrow", "s.arrow"):
        out = tmp_path / f"{name}.jsonl"
        proc = sftdata_cmd("convert", tmp_path / name, "-o", out, "--to", "alpaca")
        assert proc.returncode == 0, proc.stderr
        assert [r["output"] for r in _rows(out)] == ["c", "d"]


def _hub_cache(home: Path, repo: str, rows: list[dict]) -> None:
    """A data set in a local Hugging Face cache, laid out as ``load_dataset(repo)`` leaves it."""
    import subprocess
    import sys

    src = _jsonl(home.parent / "hub-src.jsonl", rows)
    script = ("import datasets, sys; b = datasets.load_dataset_builder('json', data_files=sys.argv[1]); "
              "b.download_and_prepare(); print(b.cache_dir)")
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    built = Path(subprocess.run([sys.executable, "-c", script, str(src)], env=env, check=True,
                                capture_output=True, text=True).stdout.strip())
    org, name = repo.split("/")
    target = home / "datasets" / f"{org}___{name}" / "default" / "0.0.0" / built.name
    shutil.copytree(built, target)
    (target / "json-train.arrow").rename(target / f"{name}-train.arrow")


def test_hub_ids_read_from_the_local_cache_only(tmp_path, sftdata_cmd):
    home = tmp_path / "hf"
    _hub_cache(home, "acme/tiny-sft", ALPACA)
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for name in ("acme/tiny-sft", "hf://datasets/acme/tiny-sft:train"):
        out = tmp_path / "hub.jsonl"
        proc = sftdata_cmd("convert", name, "-o", out, "--to", "sharegpt", env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert [r["conversations"][1]["value"] for r in _rows(out)] == ["4", "Blue."]
    missing = sftdata_cmd("convert", "acme/absent", "-o", tmp_path / "x.jsonl", "--to", "sharegpt",
                          env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "not in the local Hugging Face cache" in missing.stderr


# --- finding 2: OpenAI's shape ------------------------------------------------------------------

def test_openai_output_has_openai_tools_and_only_informative_weights(tmp_path, cli, realworld):
    out = tmp_path / "glaive.openai.jsonl"
    assert cli("convert", realworld / "glaive_toolcall_en_demo.json", "-o", out, "--to", "openai").exit_code == 0
    with_tools = [r for r in _rows(out) if r.get("tools")]
    assert with_tools and all(t["type"] == "function" and "name" in t["function"]
                              for r in with_tools for t in r["tools"])
    again = tmp_path / "again.sharegpt.jsonl"  # reading accepts both shapes; ShareGPT gets bare specs back
    assert cli("convert", out, "-o", again, "--to", "sharegpt").exit_code == 0
    raw = json.loads((realworld / "glaive_toolcall_en_demo.json").read_text())
    assert [json.loads(r["tools"] or "[]") for r in _rows(again)] == [json.loads(r["tools"] or "[]") for r in raw]

    v1 = tmp_path / "v1.openai.jsonl"
    assert cli("convert", realworld / "v1_sft_demo.jsonl", "-o", v1, "--to", "openai").exit_code == 0
    messages = [m for r in _rows(v1) for m in r["messages"]]
    assert not any("weight" in m for m in messages)  # v1's loss_weight 0/1 says what the roles say


def test_informative_weights_are_kept(tmp_path, cli):
    src = _jsonl(tmp_path / "in.jsonl", [{"messages": [
        {"role": "user", "content": "a", "weight": 0}, {"role": "assistant", "content": "b", "weight": 0},
        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d", "weight": 1}]}])
    for to in ("openai", "sharegpt"):
        out = tmp_path / f"o.{to}.jsonl"
        assert cli("convert", src, "-o", out, "--to", to).exit_code == 0
        turns = _rows(out)[0]["messages" if to == "openai" else "conversations"]
        assert [t.get("weight") for t in turns] == [None, 0.0, None, None]


# --- finding 8: summaries for scripts -------------------------------------------------------------

def test_json_and_quiet_summaries(tmp_path, sftdata_cmd):
    src = _jsonl(tmp_path / "in.jsonl", ALPACA + [{"instruction": "x"}])
    proc = sftdata_cmd("convert", src, "-o", tmp_path / "o.jsonl", "--to", "sharegpt", "--json")
    summary = json.loads(proc.stdout)
    assert summary["records_in"] == 3 and summary["records_out"] == 2
    assert summary["rejected_by_reason"] == {"missing_field:output": 1}
    assert summary["rejects"] == str(tmp_path / ".rejects" / "o.rejects.jsonl")
    quiet = sftdata_cmd("convert", src, "-o", tmp_path / "o.jsonl", "--to", "sharegpt", "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == "" and "records in" not in quiet.stderr
