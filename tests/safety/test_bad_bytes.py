"""Bad bytes: files that are not what their name says, or that push a JSON parser to its
limits. Each is a reject or one error line; never a traceback."""

from __future__ import annotations

import json
import os

import pytest

GOOD = json.dumps({"instruction": "Say hi.", "output": "Hi."}) + "\n"
FILES = {
    "deep_array.jsonl": ("[" * 100_000 + "]" * 100_000 + "\n" + GOOD).encode(),
    "deep_object.jsonl": ('{"a":' * 50_000 + "1" + "}" * 50_000 + "\n" + GOOD).encode(),
    "deep.json": ("[" * 100_000 + "]" * 100_000).encode(),
    "huge_int.jsonl": ('{"instruction": "a", "output": "b", "n": ' + "9" * 5000 + "}\n" + GOOD).encode(),
    "nul_bytes.jsonl": b'{"instruction": "a\x00b", "output": "c"}\n\x00\x00\x00\n' + GOOD.encode(),
    "bom.jsonl": b"\xef\xbb\xbf" + GOOD.encode(),
    "utf16.jsonl": GOOD.encode("utf-16"),
    "latin1.jsonl": b'{"instruction": "caf\xe9", "output": "x"}\n' + GOOD.encode(),
    "random.parquet": os.urandom(600),
    "random.csv": os.urandom(600),
    "random.json": os.urandom(600),
    "empty.parquet": b"",
    "empty.csv": b"",
    "not_an_array.json": b'"just a string"',
    "deep_cell.csv": ("instruction,output,meta\nhi,there," + "[" * 50_000 + "]" * 50_000 + "\n").encode(),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_bad_bytes_are_rejects_or_one_line(tmp_path, sftdata_cmd, name):
    (tmp_path / name).write_bytes(FILES[name])
    proc = sftdata_cmd("convert", name, "-o", "out.jsonl", "--to", "sharegpt", cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 2), proc.stderr
    if proc.returncode == 2:
        assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")], proc.stderr
    else:  # every row read is accounted for: written, or rejected with a reason
        rejects_file = tmp_path / ".rejects" / "out.rejects.jsonl"  # none written when there is none
        rejects = [json.loads(ln) for ln in rejects_file.read_text().splitlines()] if rejects_file.exists() else []
        written = (tmp_path / "out.jsonl").read_text().splitlines()
        assert all(r["reason"] for r in rejects)
        assert len(written) + len(rejects) == _records_in(proc.stderr)


def _records_in(summary: str) -> int:
    line = next(ln for ln in summary.splitlines() if "records in" in ln)
    return int(line.split()[-1].replace(",", ""))
