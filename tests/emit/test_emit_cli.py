"""``sftdata emit`` through the installed command: the files it writes beside the data,
merging into an existing dataset_info.json, refusing to overwrite what it did not write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml


def _sftdata(*args, cwd=None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("sftdata")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def _openai_file(path: Path) -> Path:
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                          {"role": "assistant", "content": "hello"}]},
            {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_llamafactory_entry_is_merged_into_an_existing_file(tmp_path):
    (tmp_path / "data").mkdir()
    data = _openai_file(tmp_path / "data" / "chat.jsonl")
    info = tmp_path / "lf" / "dataset_info.json"
    info.parent.mkdir()
    info.write_text(json.dumps({"alpaca_en_demo": {"file_name": "alpaca_en_demo.json"}}, indent=2))
    result = _sftdata("emit", data, "--for", "llamafactory", "--dataset-info", info, "--name", "chat")
    assert result.returncode == 0, result.stderr
    written = json.loads(info.read_text())
    assert list(written) == ["alpaca_en_demo", "chat"]
    assert written["chat"]["file_name"] == "../data/chat.jsonl"  # relative to dataset_dir, as LF joins it
    assert written["chat"]["formatting"] == "sharegpt" and written["chat"]["tags"]["role_tag"] == "role"
    assert json.loads(result.stdout) == {"chat": written["chat"]}
    default = _sftdata("emit", data, "--for", "llamafactory")
    assert default.returncode == 0 and json.loads((data.parent / "dataset_info.json").read_text())["chat"]["file_name"] == "chat.jsonl"


def test_snippet_files_and_refusals(tmp_path):
    data = _openai_file(tmp_path / "chat.jsonl")
    axolotl = _sftdata("emit", data, "--for", "axolotl")
    assert axolotl.returncode == 0, axolotl.stderr
    spec = yaml.safe_load((tmp_path / "chat.axolotl.yaml").read_text())["datasets"][0]
    assert spec["field_messages"] == "messages" and spec["path"] == str(data.resolve())
    assert _sftdata("emit", data, "--for", "axolotl").returncode == 0  # its own file: replaced
    (tmp_path / "chat.trl.py").write_text("# my own training script\n")
    refused = _sftdata("emit", data, "--for", "trl")
    assert refused.returncode == 2 and "not written by sftdata emit" in refused.stderr
    assert (tmp_path / "chat.trl.py").read_text() == "# my own training script\n"
    canonical = tmp_path / "c.jsonl"
    canonical.write_text(json.dumps({"id": "1", "messages": [{"role": "user", "content": "a"},
                                                            {"role": "assistant", "content": "b"}],
                                     "source": "x", "meta": {}}) + "\n")
    wrong = _sftdata("emit", canonical, "--for", "trl")
    assert wrong.returncode == 2 and "convert it first" in wrong.stderr
