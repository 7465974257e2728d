"""The one reading path: any supported file, in any format, into canonical frames.

``BatchReader`` reads a file batch by batch (bounded memory for JSON Lines, Parquet
and CSV; a JSON array is parsed whole). Each batch goes the vectorised way: decoded by
polars (``decode`` / ``table``), proven, and built into canonical rows (``build``); the
rows that cannot be proven go through the reference converter one by one
(``reference``), at their own location, and the two are merged in file order. Every
reject comes from the reference path, so both ways give the same rows and rejects.

``read_canonical`` reads a whole file into one frame (the in-memory API).
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import polars as pl

from sftdata.convert import build, ids
from sftdata.convert.decode import decode
from sftdata.convert.reference import row_to_record
from sftdata.convert.shapes import ROW, TEXT, row_shape
from sftdata.convert.table import table_columns
from sftdata.errors import RecordError, UserError
from sftdata.inputs import is_hub_id, local_input
from sftdata.formats import FACT_FIELDS, check_format, detect_format, facts
from sftdata.jsonvalues import jsonable_frame
from sftdata.progress import advance, set_total
from sftdata.io import EXTENSIONS, check_readable, dumps, extension
from sftdata.rawrows import (
    RawRow,
    json_rows,
    decode_line,
    line_blocks,
    parquet_info,
    read_rows,
    read_table,
    strip_bom,
    table_row,
)
from sftdata.records import FRAME_SCHEMA, empty_frame, frame_from_records

if TYPE_CHECKING:
    from sftdata.mapping import ColumnMapping

Progress = Callable[[int], None]
BATCH_BYTES = 32 << 20  # JSON Lines read per batch
BATCH_ROWS = 100_000  # table rows (and JSON array elements) per batch
HEAD_ROWS = 101  # decodable rows that name the format and its extra keys
_BLANK = r"^[ \t\n\r\x0b\x0c]*$"  # what bytes.strip() removes: such lines are skipped


@dataclass
class Batch:
    """Canonical rows of one stretch of a file, its read rejects and its counts."""

    frame: pl.DataFrame
    rejects: list[dict]
    rows_in: int
    facts: dict[str, int] = field(default_factory=dict)


@dataclass
class ReadResult:
    """A file read into canonical records, plus what could not be read and why.

    ``facts`` are the format's own counts over the raw rows (Alpaca: ``empty_input``,
    kept records whose ``input`` was missing, null or ""), for the audit.
    """

    frame: pl.DataFrame
    rejects: list[dict] = field(default_factory=list)
    format: str = ""
    rows_in: int = 0
    facts: dict[str, int] = field(default_factory=dict)

    @property
    def empty_input(self) -> int | None:
        return self.facts.get("empty_input") if self.format == "alpaca" else None


def _text_column(lines: list[bytes]) -> pl.Series:
    """The lines as text; a line that is not UTF-8 becomes null (it goes per-record)."""
    try:
        return pl.Series("text", lines, dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.PolarsError:
        texts = []
        for line in lines:
            try:
                texts.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                texts.append(None)
        return pl.Series("text", texts, dtype=pl.String)


def lines_frame(block: bytes, first: int) -> tuple[pl.DataFrame, int]:
    """(``ROW``, ``TEXT``) of the non-blank lines of a block, numbered from ``first``, and
    the number of lines in it (blank ones included)."""
    count = block.count(b"\n") + (not block.endswith(b"\n"))
    try:
        lines = (pl.scan_lines(block, name=TEXT, row_index_name=ROW, row_index_offset=first)
                 .filter(~pl.col(TEXT).str.contains(_BLANK)).collect())
    except pl.exceptions.PolarsError:  # a line that is not UTF-8
        raw = block.split(b"\n", count)[:count]
        lines = (pl.DataFrame({TEXT: _text_column(raw)}).with_row_index(ROW, offset=first)
                 .filter(pl.col(TEXT).is_null() | ~pl.col(TEXT).str.contains(_BLANK)))
    return lines.select(pl.col(ROW).cast(pl.Int64), TEXT), count


class BatchReader:
    """A data file read into canonical frames batch by batch (see the module docstring).

    ``format`` is known once constructed (forced by ``fmt`` or detected from the first
    rows); ``rows_in``, ``facts`` and ``rejected`` add up as batches are read.
    ``vectorised=False`` sends every row through the reference path.
    """

    def __init__(self, path: str | os.PathLike, fmt: str | None = None, source: str | None = None,
                 progress: Progress | None = None, vectorised: bool = True,
                 batch_bytes: int = BATCH_BYTES, batch_rows: int = BATCH_ROWS,
                 mapping: ColumnMapping | None = None):
        if str(path) != "-" and not is_hub_id(str(path)):
            check_readable(Path(path))
        self.local = local_input(path)  # stdin, .gz/.zst, Arrow streams, Hub ids -> a plain file
        self.path = self.local.path
        self.kind = extension(self.path)
        check_readable(self.path)
        self.source = source or self.local.name
        self.progress, self.vectorised = progress, vectorised
        self.batch_bytes, self.batch_rows = batch_bytes, batch_rows
        self.info = parquet_info(self.path) if self.kind == ".parquet" else {}
        self.json_rows: list[RawRow] | None = None
        self.mapping = mapping
        self._renames: dict[str, str] = {}
        if mapping is not None and self.kind not in (".jsonl", ".json") and not mapping.turn_level:
            # table columns are renamed in polars (vectorised); rows keep nothing to map
            self._renames = {theirs: ours for ours, theirs in mapping.columns.items()}
            self.mapping = None
        head, any_rows = self._head()
        if any_rows and not head and not fmt:
            raise UserError(nothing_readable(Path(path), self._head_errors, mapped=mapping is not None))
        fmt = fmt or (mapping.format if mapping is not None else None)
        self.format = check_format(fmt) if fmt else (detect_format(head) if any_rows else "canonical")
        if self.mapping is not None:
            self.mapping = self.mapping.for_format(self.format)
            self.vectorised = False  # mapped JSON rows are renamed one by one (reference path)
        if self.format not in build.BUILDERS:
            self.vectorised = False  # prompt_completion: read by the reference converter
        self.shape = row_shape(self.format, head) if self.vectorised else None
        self.rows_in, self.rejected = 0, 0
        self.facts: dict[str, int] = {}

    # -- the first rows ------------------------------------------------------------
    def _head(self) -> tuple[list[dict], bool]:
        """The first decodable rows (as the reference reader sees them), and whether the
        file has any row at all."""
        good, seen = [], False
        self._head_errors: list[str] = []  # why the rows before the first good one failed
        try:
            if self.kind == ".jsonl":
                with open(self.path, "rb") as f:
                    for number, line in enumerate(f, start=1):
                        line = strip_bom(line) if number == 1 else line
                        if line.strip():
                            seen = True
                            row = self._mapped(decode_line(number, line.rstrip(b"\n").rstrip(b"\r")))
                            if row.data is not None:
                                good.append(row.data)
                                if len(good) >= HEAD_ROWS:
                                    break
                            elif not good:
                                self._head_errors.append(row.error)
            elif self.kind == ".json":
                self.json_rows = list(json_rows(self.path, self.path.read_bytes()))
                seen = bool(self.json_rows)
                good = [m.data for m in map(self._mapped, self.json_rows[:HEAD_ROWS * 2])
                        if m.data is not None][:HEAD_ROWS]
                self._head_errors = [r.error for r in self.json_rows if r.data is None]
            else:
                frame = self._table().head(HEAD_ROWS).collect()
                seen = frame.height > 0
                try:
                    frame = jsonable_frame(frame)
                except TypeError:
                    pass
                good = [table_row(r, True, self.info) for r in frame.iter_rows(named=True)]
                good = [m.data for m in (self._mapped(RawRow(i, r)) for i, r in enumerate(good))
                        if m.data is not None]
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise UserError(f"{self.path}: cannot read ({str(exc).splitlines()[0]})") from None
        return good, seen

    def _table(self) -> pl.LazyFrame:
        """The table file, with the mapping's column renames (polars refuses a clash)."""
        query = read_table(self.path)
        if self._renames:
            names = query.collect_schema().names()
            clash = [ours for theirs, ours in self._renames.items() if theirs in names and ours in names]
            if clash:
                raise UserError(f"{self.local.name}: has both a column mapped to {clash[0]!r} and one "
                                f"named {clash[0]!r}; map or drop one")
            query = query.rename(self._renames, strict=False)
        return query

    def _mapped(self, row: RawRow) -> RawRow:
        """A decoded row renamed by the column/role mapping (a clash is a reject)."""
        if self.mapping is None or row.data is None:
            return row
        try:
            return RawRow(row.location, self.mapping.apply(row.data))
        except RecordError as exc:
            return RawRow(row.location, None, dumps(row.data), exc.reason)

    # -- batches ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[Batch]:
        """The batches in file order. The next batch is read on a worker thread while the
        caller works on this one (polars releases the GIL), so reading overlaps the steps."""
        yield from _ahead(self._batches())

    def total_rows(self) -> int | None:
        """The rows the file holds, where that is cheap to know before reading: exact for
        Parquet (its metadata), a JSON array (parsed whole) and CSV (polars counts rows
        without parsing fields); JSON Lines estimate it batch by batch from the bytes read."""
        if self.kind == ".json":
            return len(self.json_rows or [])
        if self.kind in (".parquet", ".csv"):
            try:
                return int(self._table().select(pl.len()).collect().item())
            except (OSError, pl.exceptions.PolarsError):
                return None  # the read itself reports what is wrong
        return None

    def _batches(self) -> Iterator[Batch]:
        total = self.total_rows()
        if total is not None:
            set_total(self.progress, total)
        try:
            if self.kind == ".jsonl":
                yield from self._jsonl_batches()
            elif self.kind == ".json":
                yield from self._json_batches()
            else:
                yield from self._table_batches()
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise UserError(f"{self.path}: cannot read ({str(exc).splitlines()[0]})") from None

    def _counted(self, batch: Batch) -> Batch:
        self.rows_in += batch.rows_in
        self.rejected += len(batch.rejects)
        for key, value in batch.facts.items():
            self.facts[key] = self.facts.get(key, 0) + value
        advance(self.progress, batch.rows_in)
        return batch

    def _jsonl_batches(self) -> Iterator[Batch]:
        first, size, consumed = 1, max(self.path.stat().st_size, 1), 0
        for index, block in enumerate(line_blocks(self.path, self.batch_bytes)):
            consumed += len(block)
            if index == 0:
                block = strip_bom(block)
            lines, count = lines_frame(block, first)
            # The rows so far, scaled to the file's size: exact once the last block is read.
            set_total(self.progress, round((first - 1 + count) * size / consumed))
            if lines.height:
                raw = {}
                if lines[TEXT].null_count():  # keep the bytes of lines that are not UTF-8
                    split = block.split(b"\n", count)[:count]
                    raw = {n: split[n - first] for n in lines.filter(pl.col(TEXT).is_null())[ROW]}

                def fallback(n: int, text: str | None, raw=raw) -> RawRow:
                    data = raw[n] if text is None else text.encode("utf-8")
                    return decode_line(n, data.rstrip(b"\r"))

                yield self._counted(self._text_batch(lines, fallback))
            first += count

    def _json_batches(self) -> Iterator[Batch]:
        rows = self.json_rows or []
        import json

        for start in range(0, len(rows), self.batch_rows):
            part = rows[start:start + self.batch_rows]
            rejects = [row_to_record(r, self.format, self.source)[1] for r in part if r.error]
            good = [r for r in part if r.error is None]
            by_index = {r.location: r for r in good}
            lines = pl.DataFrame({ROW: pl.Series([r.location for r in good], dtype=pl.Int64),
                                  TEXT: [json.dumps(r.data, ensure_ascii=False) for r in good]},
                                 schema={ROW: pl.Int64, TEXT: pl.String})
            batch = self._text_batch(lines, lambda n, text: by_index[n]) if good else \
                Batch(empty_frame(), [], 0)
            batch.rejects = sorted(rejects + batch.rejects, key=lambda r: r["location"])
            batch.rows_in = len(part)
            yield self._counted(batch)

    def _table_batches(self) -> Iterator[Batch]:
        query = self._table().with_row_index(ROW)
        for batch in query.collect_batches(chunk_size=self.batch_rows):
            batch = batch.with_columns(pl.col(ROW).cast(pl.Int64))
            columns = table_columns(batch, self.format, self.info) if self.vectorised else None
            built = build.BUILDERS[self.format](columns) if columns is not None else None
            ok = built["_ok"] if built is not None else pl.Series([False] * batch.height)

            def rows_of(mask: pl.Series) -> list[RawRow]:
                subset = batch.filter(mask)
                numbers = subset[ROW].to_list()
                try:
                    subset = jsonable_frame(subset.drop(ROW))
                except TypeError:
                    subset = subset.drop(ROW)
                return [RawRow(n, table_row(row, True, self.info))
                        for n, row in zip(numbers, subset.iter_rows(named=True))]

            yield self._counted(self._merge(built, ok, rows_of(~ok), batch.height))

    # -- one batch -------------------------------------------------------------------
    def _text_batch(self, lines: pl.DataFrame, fallback: Callable[[int, str | None], RawRow]) -> Batch:
        """A batch of JSON texts (``ROW``, ``TEXT``): vectorised, unproven rows by reference."""
        if self.vectorised:
            prepared = build.prepare(decode(lines, self.shape), self.shape)
            built = build.BUILDERS[self.format](prepared)
            ok = built["_ok"]
        else:
            built, ok = None, pl.Series([False] * lines.height)
        slow = lines.filter(~ok)
        rows = [fallback(n, text) for n, text in slow.iter_rows()]
        return self._merge(built, ok, rows, lines.height)

    def _merge(self, built: pl.DataFrame | None, ok: pl.Series, slow_rows: list[RawRow],
               rows_in: int) -> Batch:
        """The vectorised rows and the reference rows of a batch, in file order."""
        records, numbers, rejects, raw_facts = [], [], [], []
        fact_field = FACT_FIELDS.get(self.format)
        for row in slow_rows:
            record, reject = row_to_record(self._mapped(row), self.format, self.source)
            if record is None:
                rejects.append(reject)
                continue
            records.append(record)
            numbers.append(row.location)
            if fact_field:
                raw_facts.append(row.data.get(fact_field))
        parts = []
        if built is not None and ok.any():
            fast = built.filter(ok)
            need = fast["id"].is_null()
            fast = fast.with_columns(
                pl.coalesce(pl.col("id"), pl.lit(ids.computed_ids(fast, need))).alias("id"),
                pl.col("source").fill_null(self.source))
            if fact_field:
                raw_facts += fast["_fact"].to_list()
            parts.append(fast.select(ROW, *FRAME_SCHEMA.names()).cast({**FRAME_SCHEMA, ROW: pl.Int64}))
        if records:
            parts.append(frame_from_records(records).with_columns(pl.Series(ROW, numbers, dtype=pl.Int64))
                         .select(ROW, *FRAME_SCHEMA.names()))
        if not parts:
            frame = empty_frame()
        else:
            frame = pl.concat(parts) if len(parts) > 1 else parts[0]
            frame = (frame.sort(ROW) if len(parts) > 1 else frame).drop(ROW)
        batch_facts = facts(self.format, raw_facts) if fact_field else {}
        return Batch(frame, rejects, rows_in, batch_facts)


_COMPRESSED = {b"\x1f\x8b": ("gzip", ".gz"), b"\x28\xb5\x2f\xfd": ("zstd", ".zst"),
               b"BZh": ("bzip2", None), b"\xfd7zXZ\x00": ("xz", None), b"PK\x03\x04": ("zip", None)}


def nothing_readable(path: Path, errors: list[str], mapped: bool = False) -> str:
    """Why a file none of whose rows decoded has no detectable format, in one line."""
    head = b""
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(8)
    for magic, (kind, suffix) in _COMPRESSED.items():
        if head.startswith(magic):
            if suffix:  # read transparently when the name says so
                return f"{path}: this is a {kind}-compressed file; name it {path.name}{suffix} to read it as one"
            return (f"{path}: this is a {kind}-compressed file; decompress it first "
                    f"(sftdata reads plain {', '.join(EXTENSIONS)} files, and .gz / .zst ones)")
    reasons = ", ".join(f"{reason} {n}" for reason, n in Counter(errors).most_common())
    why = f"none of its {len(errors):,} rows is a readable record ({reasons})"
    if mapped and all(e.startswith("column_conflict") for e in errors):
        return f"{path}: {why}; the --columns mapping clashes with columns the file has"
    return f"{path}: {why}; is it really {path.suffix or 'JSON'}? (--from FORMAT keeps them all as rejects)"


def _ahead(items: Iterator[Batch]) -> Iterator[Batch]:
    """``items``, produced one ahead on a worker thread (errors are raised in order)."""
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(next, items, None)
        while True:
            item = pending.result()
            if item is None:
                return
            pending = pool.submit(next, items, None)
            yield item


def read_batches(path: str | os.PathLike, fmt: str | None = None, source: str | None = None,
                 progress: Progress | None = None, vectorised: bool = True,
                 mapping: ColumnMapping | None = None) -> BatchReader:
    """``BatchReader(...)``: iterate it for the batches."""
    return BatchReader(path, fmt, source, progress, vectorised, mapping=mapping)


def read_canonical(
    path: str | os.PathLike,
    fmt: str | None = None,
    source: str | None = None,
    progress: Progress | None = None,
    vectorised: bool = True,
    mapping: ColumnMapping | None = None,
) -> ReadResult:
    """Read a .json/.jsonl/.parquet/.csv file in any format into the canonical frame.

    ``fmt`` forces the input format (else it is detected from the columns); ``source``
    names the records' origin (default: the file name); ``mapping`` renames the file's
    own columns, turn keys and roles (``sftdata.mapping``).
    """
    reader = BatchReader(path, fmt, source, progress, vectorised, mapping=mapping)
    frames, rejects = [], []
    for batch in reader:
        frames.append(batch.frame)
        rejects.extend(batch.rejects)
    frame = pl.concat(frames) if len(frames) > 1 else (frames[0] if frames else empty_frame())
    return ReadResult(frame, rejects, reader.format, reader.rows_in, reader.facts)


def reference_read(path: str | os.PathLike, fmt: str | None = None, source: str | None = None) -> ReadResult:
    """The whole file through the reference reader (``sftdata.rawrows.read_rows``) and the
    reference converter: what ``read_canonical`` must equal."""
    from sftdata.convert.reference import rows_to_records

    rows = list(read_rows(path))
    good = (r.data for r in rows if r.data is not None)
    fmt = check_format(fmt) if fmt else (detect_format(good) if rows else "canonical")
    records, rejects = rows_to_records(rows, fmt, source or Path(path).name)
    fact_field = FACT_FIELDS.get(fmt)
    failed = {r["location"] for r in rejects}
    values = [r.data.get(fact_field) for r in rows if fact_field and r.data is not None
              and r.location not in failed]
    return ReadResult(frame_from_records(records), rejects, fmt, len(rows), facts(fmt, values))
