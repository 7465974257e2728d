"""File I/O: every extension reads and writes, writes are atomic, bad files are one-line errors."""

from __future__ import annotations

import json

import pytest

from sftdata.convert import read_canonical, write_records
from sftdata.errors import UserError
from sftdata.io import read_complete_lines, write_rows, JsonlAppender

ROWS = [
    {"conversations": [{"from": "human", "value": "你好 👋"}, {"from": "gpt", "value": "שלום"}],
     "system": "be brief", "tag": 1},
    {"conversations": [{"from": "human", "value": "q"},
                       {"from": "function_call", "value": '{"name": "f", "arguments": {"x": 1}}'},
                       {"from": "observation", "value": "{}"}, {"from": "gpt", "value": "done"}],
     "system": None, "tag": 2},
]


@pytest.mark.parametrize("ext", [".json", ".jsonl", ".parquet", ".csv"])
def test_every_extension_round_trips_records(tmp_path, ext):
    src = tmp_path / "src.json"
    src.write_text(json.dumps(ROWS, ensure_ascii=False), encoding="utf-8")
    original = read_canonical(src)
    out = tmp_path / f"out{ext}"
    assert write_records(original.frame, out, "sharegpt") == []
    again = read_canonical(out)
    assert again.format == "sharegpt" and again.rejects == []
    assert again.frame["messages"].to_list() == original.frame["messages"].to_list()
    tags = [json.loads(m)["tag"] for m in again.frame["meta"]]
    assert tags == (["1", "2"] if ext == ".csv" else [1, 2])  # CSV cells carry no types


def test_interrupted_write_leaves_the_old_file_untouched(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("previous complete output\n", encoding="utf-8")

    def rows():
        yield {"a": 1}
        raise KeyboardInterrupt  # the run is killed half way through writing

    with pytest.raises(KeyboardInterrupt):
        write_rows(out, rows())
    assert out.read_text(encoding="utf-8") == "previous complete output\n"
    assert list(tmp_path.iterdir()) == [out]  # no temp file left behind


@pytest.mark.parametrize("name,content,message", [
    ("missing.jsonl", None, "no such file"),
    ("data.txt", "x", "unknown extension"),
    ("broken.json", '[{"instruction": "a"', "not valid JSON"),
    ("scalar.json", "42", "array of records"),
])
def test_bad_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message) as info:
        read_canonical(path)
    assert "\n" not in str(info.value)


def test_appender_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "gen.jsonl"
    with JsonlAppender(path) as out:
        out.append([{"n": 1}, {"n": 2}])
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"n": 3')  # killed mid-write
    assert read_complete_lines(path) == [{"n": 1}, {"n": 2}]
    with JsonlAppender(path) as out:
        out.append([{"n": 3}])
    assert read_complete_lines(path) == [{"n": 1}, {"n": 2}, {"n": 3}]


@pytest.mark.parametrize("ext", [".jsonl", ".parquet"])
def test_outputs_get_the_permissions_of_a_plain_open(tmp_path, ext):
    """Atomic writes go through a private temp file; the output must not stay private."""
    import os
    import stat

    from sftdata.convert import convert_file
    from sftdata.io import atomic_dir

    source = tmp_path / "in.jsonl"
    source.write_text('{"instruction":"a","output":"b"}\n', encoding="utf-8")
    plain = tmp_path / "plain"
    plain.write_text("")
    convert_file(source, tmp_path / f"out{ext}", "sharegpt")
    mode = stat.S_IMODE(os.stat(tmp_path / f"out{ext}").st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode)
    with atomic_dir(tmp_path / "folder") as folder:
        (folder / "x").write_text("x")
    (tmp_path / "plain_dir").mkdir()
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == stat.S_IMODE((tmp_path / "plain_dir").stat().st_mode)
