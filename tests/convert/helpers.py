"""Both conversion paths on the same file: the vectorised one and the reference."""

from __future__ import annotations

import json
from pathlib import Path

from sftdata.convert import read_canonical, reference_read, write_records
from sftdata.convert.reference import records_to_rows
from sftdata.io import dumps
from sftdata.rawrows import read_rows
from sftdata.records import records_from_frame


def assert_reads_agree(path: Path, fmt: str | None = None, **kwargs):
    """The vectorised reader gives the reference's records, rejects, counts and facts."""
    fast = read_canonical(path, fmt=fmt, **kwargs)
    slow = reference_read(path, fmt=fmt)
    assert fast.format == slow.format
    assert fast.rows_in == slow.rows_in
    assert records_from_frame(fast.frame) == records_from_frame(slow.frame)
    assert [dumps(r) for r in fast.rejects] == [dumps(r) for r in slow.rejects]  # NaN != NaN
    assert fast.facts == slow.facts
    return fast


def assert_writes_agree(frame, to: str, tmp: Path) -> list[dict]:
    """The vectorised JSON Lines writer gives the reference writer's rows and rejects."""
    out = tmp / f"written-{to}.jsonl"
    rejects = write_records(frame, out, to)
    rows, expected = records_to_rows(records_from_frame(frame), to)
    assert [r.data for r in read_rows(out)] == rows
    assert rejects == expected
    return rejects


def jsonl(path: Path, rows, **dumps) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, **dumps)) + "\n" for r in rows),
                    encoding="utf-8")
    return path
