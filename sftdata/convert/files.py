"""``convert_file``: one file to another, by the fastest route that gives the same result.

Alpaca .jsonl -> ShareGPT/OpenAI .jsonl takes the direct vectorised route
(``sftdata.convert.fast``); everything else is read and written batch by batch
(``BatchReader`` -> ``RecordWriter``), so memory stays bounded whatever the size.
Both give the same output rows and the same rejects as the reference path.
"""

from __future__ import annotations

import os
from typing import Callable, NamedTuple

from sftdata.convert.fast import plan as fast
from sftdata.convert.fast import run as fast_run
from sftdata.convert.read import BatchReader, Progress
from sftdata.convert.write import RecordWriter
from sftdata.formats import check_format
from sftdata.mapping import ColumnMapping


class Converted(NamedTuple):
    """What ``convert_file`` did: rows read, rows written, rejects (read then write), format."""

    rows_in: int
    rows_out: int
    rejects: list[dict]
    format: str


def convert_file(
    input: str | os.PathLike,
    output: str | os.PathLike,
    to: str,
    fmt: str | None = None,
    progress: Progress | None = None,
    on_rejects: Callable[[list[dict]], None] | None = None,
    mapping: ColumnMapping | None = None,
) -> Converted:
    """Convert a file to format ``to``, file to file; the output is written atomically.

    ``on_rejects`` receives the rejects batch by batch as they happen (then the returned
    ``rejects`` is empty), so a caller can stream them to disk. ``mapping`` renames the
    input's own columns, turn keys and roles (``sftdata.mapping``).
    """
    check_format(to)
    plan = fast.plan(input, output, to, fmt) if mapping is None else None
    if plan is not None:
        rows_in, rows_out, rejects = fast_run.convert(plan, progress)
        if on_rejects is not None:
            on_rejects(rejects)
            rejects = []
        return Converted(rows_in, rows_out, rejects, "alpaca")
    reader = BatchReader(input, fmt, progress=progress, mapping=mapping)
    read_rejects, write_rejects = [], []
    with RecordWriter(output, to) as writer:
        for batch in reader:
            written = writer.write(batch.frame)
            if on_rejects is not None:
                on_rejects(batch.rejects + written)
            else:
                read_rejects += batch.rejects
                write_rejects += written
    return Converted(reader.rows_in, writer.rows, read_rejects + write_rejects, reader.format)
