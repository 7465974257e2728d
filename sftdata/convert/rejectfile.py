"""The rejects file as the commands write it: each reject as it comes, none kept, and
no file at all when there is none.

``RejectsWriter`` is a context manager (the file appears, atomically, when the block
ends). Step rejects are written from the rejected frame in polars, the record as its
canonical JSON line, so a dedup dropping millions of rows never builds their dicts.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import polars as pl

from sftdata.convert import emit
from sftdata.io import atomic_path, dumps
from sftdata.ownership import is_ours


class RejectsWriter:
    """The rejects file, written as the rejects come and kept in no list (atomic: the
    file appears when the block ends). ``counts`` are rejects by reason so far.

    No file is written when there is no reject (``written`` says whether one was); a
    rejects file sftdata wrote there earlier is then removed, so what is left on disk
    is this run's.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.counts: dict[str, int] = {}
        self._stack = contextlib.ExitStack()
        self._out = None

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, *exc):
        if self._out is None and exc[0] is None and is_ours(self.path):
            self.path.unlink()  # an earlier run's rejects: none this time
        return self._stack.__exit__(*exc)

    @property
    def written(self) -> bool:
        return self._out is not None

    def _file(self):
        if self._out is None:
            self._tmp = self._stack.enter_context(atomic_path(self.path))
            self._out = self._stack.enter_context(open(self._tmp, "wb"))
        return self._out

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _count(self, reasons) -> None:
        for reason in reasons:
            self.counts[reason] = self.counts.get(reason, 0) + 1

    def add(self, rejects: list[dict]) -> None:
        """Reject entries (``sftdata.rejects.make_reject``)."""
        for reject in rejects:
            self._file().write((dumps(reject) + "\n").encode("utf-8"))
        self._count(r["reason"] for r in rejects)

    def add_rejected(self, rejected: pl.DataFrame, stage: str) -> None:
        """The rows a step dropped (canonical columns + reason + detail), as reject lines
        built in polars (the record is the canonical record's JSON)."""
        if rejected.height == 0:
            return
        record, _ = emit.EMITTERS["canonical"](rejected)
        lines = rejected.select(pl.concat_str([
            pl.lit('{"source":'), emit.json_string(pl.col("source").fill_null("")),
            pl.lit(f',"location":null,"stage":{json.dumps(stage, ensure_ascii=False)},"reason":'),
            emit.json_string(pl.col("reason")), pl.lit(',"detail":'), pl.col("detail").fill_null("null"),
            pl.lit(',"id":'), emit.json_string(pl.col("id")), pl.lit(',"record":'), record, pl.lit("}"),
        ]).alias("l"))
        lines.write_csv(self._file(), include_header=False, quote_style="never")
        self._count(rejected["reason"].to_list())
