"""Runs a fast conversion: the sized route over the whole file, else the checked route.

The sized route (``fast_sized``) streams the whole file through one polars query and
proves at the end, from byte counts, that every line was clean. It is tried when the
file's first lines pass the same proof (a compactly written file); if the whole file
then fails it (a bad line further on), the output is discarded and the file goes the
checked route. Rows without optional columns (no system prompt, no extra column) are
written by polars itself (``fast_sized.sink``); otherwise, or when a system prompt
turns up, the rows come back to Python in batches to be written shape by shape.

The checked route reads the file in blocks of whole lines and converts two blocks at a
time on worker threads (polars releases the GIL): ``fast.analyse_lines`` proves lines
clean one by one, and the lines it cannot prove go through the per-record functions
on the main thread, which writes every block's rows in file order.
"""

from __future__ import annotations

import contextlib
import io
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import polars as pl

from sftdata.convert.fast import plan as fast
from sftdata.convert.fast import sized as fast_sized
from sftdata.io import atomic_path
from sftdata.rawrows import decode_line, line_blocks

BLOCK_BYTES = 16 << 20  # small enough for the allocator to reuse memory between blocks
PROBE_BYTES = 1 << 20  # the first lines, enough to tell a compactly written file
WATCH_SECONDS = 0.25  # how often the progress of a conversion polars writes is read
WORKERS = 2  # blocks converted at once; these machines have 2 cores

Progress = Callable[[int], None]


def convert(p: fast.Plan, progress: Progress | None = None, block_bytes: int = BLOCK_BYTES):
    """Run a plan: write the output atomically; returns ``(rows_in, rows_out, rejects)``."""
    report = _ReportOnce(progress)
    with atomic_path(p.output) as tmp:
        rows = _convert_sized(p, tmp, report)
        if rows is not None:
            return rows, rows, []
        report.start_over()
        with open(tmp, "wb") as out:
            return _convert_checked(p, out, report, block_bytes)


def _convert_sized(p: fast.Plan, tmp: Path, report: _ReportOnce) -> int | None:
    """The sized route when the file's first lines pass its proof: rows written, or None."""
    shape = fast_sized.framing(p)
    if shape is None:
        return None
    probe = io.BytesIO()
    probe_rows = fast_sized.convert(next(blocks(Path(p.input), PROBE_BYTES), b""), p, shape, probe)
    if probe_rows is None:
        return None
    if not p.extras and not p.system_seen:
        bytes_per_row = len(probe.getvalue()) / probe_rows
        rows = _watched(lambda: fast_sized.sink(Path(p.input), p, shape, tmp), tmp, bytes_per_row, report)
        if rows is not None:
            return rows
        report.start_over()
    with open(tmp, "wb") as out:
        return fast_sized.convert(Path(p.input), p, shape, out, report)


def _watched(run: Callable[[], int | None], target: Path, bytes_per_row: float, report: _ReportOnce):
    """``run()`` on a thread while the growth of ``target`` is reported as estimated rows."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run)
        estimated = 0
        while not wait([future], timeout=WATCH_SECONDS).done:
            with contextlib.suppress(OSError):
                now = int(target.stat().st_size / bytes_per_row * 0.9)  # under, not over
                if now > estimated:
                    report(now - estimated)
                    estimated = now
        rows = future.result()
    if rows is not None and rows > estimated:
        report(rows - estimated)
    return rows


class _ReportOnce:
    """Forwards progress, leaving out rows an abandoned first attempt already reported."""

    def __init__(self, progress: Progress | None):
        self.progress, self.reported, self.seen = progress, 0, 0

    def start_over(self) -> None:
        self.seen = 0

    def __call__(self, rows: int) -> None:
        self.seen += rows
        if self.progress and self.seen > self.reported:
            self.progress(self.seen - self.reported)
            self.reported = self.seen


def blocks(path: Path, block_bytes: int) -> Iterator[bytes]:
    """Consecutive blocks of whole lines (``sftdata.io.line_blocks``)."""
    return line_blocks(path, block_bytes)


@dataclass
class BlockDone:
    """One block's analysis by the checked route, its line numbers ``n`` counted from 1."""

    lines: int  # lines in the block, blank ones included (line numbers advance by this)
    analysis: pl.DataFrame
    not_utf8: dict[int, bytes] = field(default_factory=dict)


def analyse_block(block: bytes, p: fast.Plan) -> BlockDone:
    lines = block.count(b"\n") + (not block.endswith(b"\n"))
    analysis, not_utf8 = fast.analyse_lines(1, block, lines, p)
    return BlockDone(lines, analysis, not_utf8)


@dataclass
class _Totals:
    rows_in: int = 0
    rows_out: int = 0
    read_rejects: list[dict] = field(default_factory=list)
    write_rejects: list[dict] = field(default_factory=list)


def _convert_checked(p: fast.Plan, out: BinaryIO, report: _ReportOnce, block_bytes: int):
    totals = _Totals()
    line = 1
    with ThreadPoolExecutor(WORKERS) as pool:
        pending: deque[Future[BlockDone]] = deque()

        def finish(done: BlockDone) -> None:
            nonlocal line
            _write_block(done, line, p, out, totals)
            line += done.lines
            report(done.analysis.height)

        for block in blocks(Path(p.input), block_bytes):
            pending.append(pool.submit(analyse_block, block, p))
            if len(pending) > WORKERS:
                finish(pending.popleft().result())
        while pending:
            finish(pending.popleft().result())
    return totals.rows_in, totals.rows_out, totals.read_rejects + totals.write_rejects


def _write_block(done: BlockDone, first: int, p: fast.Plan, out: BinaryIO, totals: _Totals) -> None:
    """A block's rows, the unproven ones through the per-record functions, at their lines."""
    result = done.analysis.with_columns(pl.col("n") + (first - 1))
    slow = result.filter(~pl.col("_clean")).select("n", "text")
    pairs: list[tuple[int, str]] = []
    if slow.height:
        rows = []
        for n, text in slow.iter_rows():
            raw = done.not_utf8[n - first + 1] if text is None else text.encode()
            rows.append(decode_line(n, raw.rstrip(b"\r")))
        pairs, read_rejects, write_rejects = fast.per_record(rows, p.to, p.source)
        totals.read_rejects += read_rejects
        totals.write_rejects += write_rejects
    totals.rows_in += result.height
    totals.rows_out += fast.write_rows_out(result, pairs, p, out)
