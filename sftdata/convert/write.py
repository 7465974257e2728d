"""The one writing path: canonical frames -> a file in any format, batch by batch.

``RecordWriter(path, to)`` is a context manager: ``write(frame)`` converts one batch
and returns its write rejects; the file appears (atomically) when the block ends
without an error. ``write_records(frame, path, to)`` writes one frame.

JSON Lines and JSON arrays are written as the batches come, from ``emit.json_lines``
(rows it cannot prove are written by the reference ``from_canonical``, which decides
every reject). Parquet and CSV need one schema for the whole file, so each batch goes
to a part file and the parts are joined at the end (streamed, bounded memory):

- a column of the format keeps its native type (``messages`` as a list of structs);
  each message's extra keys are one JSON-text field, ``extra``, and ``tools`` is JSON
  text, so nothing is lost and every round trip through Parquet is exact;
- a ``meta`` key becomes a column of its values' type when every row agrees (string,
  boolean, 64-bit integer, float), and a column of JSON text otherwise (objects, lists,
  integers beyond 64 bits, or types that differ between rows or batches);
- the Parquet key-value metadata (``sftdata.io.PARQUET_KEY``) lists the JSON-text
  columns and names the ``extra`` field, so sftdata reads its own files back exactly.
  CSV holds text only: its nested columns are JSON text in the format's own shape.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import polars as pl

from sftdata.colnames import col
from sftdata.convert import emit
from sftdata.convert.reference import record_to_row
from sftdata.errors import UserError
from sftdata.formats import check_format
from sftdata.inputs import STDIO, compression, open_compressed
from sftdata.io import atomic_path, column_kind, dumps, extension, parquet_metadata, table_column
from sftdata.records import FRAME_SCHEMA, MESSAGE_DTYPE, records_from_frame

_E = pl.element()
# The native columns of each format in Parquet, in order, with their types.
SHAREGPT_TURN = pl.Struct({"from": pl.String, "value": pl.String, "weight": pl.Float64, "extra": pl.String})
TABLE_COLUMNS = {
    "alpaca": {"instruction": pl.String, "input": pl.String, "output": pl.String, "system": pl.String,
               "history": pl.List(pl.List(pl.String))},
    "sharegpt": {"conversations": pl.List(SHAREGPT_TURN), "system": pl.String, "tools": pl.String},
    "openai": {"messages": pl.List(MESSAGE_DTYPE), "tools": pl.String},
    "canonical": dict(FRAME_SCHEMA),
}
JSON_TEXT = {"alpaca": [], "sharegpt": [], "openai": ["tools"], "canonical": ["tools", "meta"]}


class RecordWriter:
    """Write canonical frames to ``path`` in format ``to`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, to: str):
        self.path, self.to = Path(path), check_format(to)
        self.kind = extension(self.path)
        if self.kind == ".arrow":
            raise UserError(f"{path}: sftdata reads Arrow files but writes .parquet (or .jsonl, .json, .csv)")
        if self.to in emit.JSON_ONLY and self.kind not in (".jsonl", ".json"):
            raise UserError(f"{path}: {self.to} is written as .jsonl or .json")
        self.stdout = str(path) == STDIO
        self.compression = compression(self.path)
        self.rows = 0
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> RecordWriter:
        if self.stdout:  # JSON Lines to standard output, as the rows come
            self._out = sys.stdout.buffer
            self._stack.callback(self._out.flush)
            return self
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        if self.kind in (".jsonl", ".json"):
            self._out = self._stack.enter_context(open_compressed(self._tmp, "wb") if self.compression
                                                  else open(self._tmp, "wb"))
            if self.kind == ".json":
                self._out.write(b"[")
        else:
            self._parts_dir = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.parts.", dir=self.path.parent))
            self._stack.callback(shutil.rmtree, self._parts_dir, True)
            self._parts: list[tuple[Path, dict[str, str]]] = []
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self._finish()
            except BaseException as failed:  # the temp file goes; nothing reaches the target
                self._stack.__exit__(type(failed), failed, failed.__traceback__)
                raise
        return self._stack.__exit__(exc_type, exc, tb)

    # -- one batch ---------------------------------------------------------------------
    def write(self, frame: pl.DataFrame) -> list[dict]:
        """Convert and write one batch; returns its write rejects."""
        if frame.height == 0:
            return []
        if self.kind in (".jsonl", ".json"):
            return self._write_lines(frame)
        return self._write_part(frame)

    def _reference(self, frame: pl.DataFrame) -> tuple[list[dict | None], list[dict]]:
        """Rows of ``frame`` by the reference writer: (row or None per record, rejects)."""
        rows, rejects = [], []
        for record in records_from_frame(frame):
            row, reject = record_to_row(record, self.to)
            rows.append(row)
            if reject is not None:
                rejects.append(reject)
        return rows, rejects

    def _write_lines(self, frame: pl.DataFrame) -> list[dict]:
        out = emit.json_lines(frame, self.to)
        lines, ok = out["line"], out["ok"]
        rejects: list[dict] = []
        if not ok.all():
            rows, rejects = self._reference(frame.filter(~ok))
            slow = pl.Series([None if r is None else dumps(r) for r in rows], dtype=pl.String)
            lines = lines.scatter((~ok).arg_true(), slow)
        lines = lines.drop_nulls()
        if not len(lines):
            return rejects
        if self.kind == ".json":
            first = ",\n" if self.rows else "\n"
            lines = pl.Series([first] + [",\n"] * (len(lines) - 1), dtype=pl.String) + lines
            pl.DataFrame({"l": lines}).write_csv(self._out, include_header=False, quote_style="never",
                                                 line_terminator="")
        else:
            pl.DataFrame({"l": lines}).write_csv(self._out, include_header=False, quote_style="never")
        self.rows += len(lines)
        return rejects

    def _write_part(self, frame: pl.DataFrame) -> list[dict]:
        native = self.kind == ".parquet"
        if native:
            out = emit.json_lines(frame, self.to)  # the same proof decides the vectorised rows
            ok = out["ok"]
        else:
            ok = pl.Series([False] * frame.height)
        parts = []
        if ok.any():
            fast = frame.filter(ok)
            parts.append((ok.arg_true(), self._native(fast), self._fast_extras(fast)))
        rejects: list[dict] = []
        if not ok.all():
            rows, rejects = self._reference(frame.filter(~ok))
            positions = (~ok).arg_true().to_list()
            kept = [(p, r) for p, r in zip(positions, rows) if r is not None]
            if kept:
                table, extras = self._from_rows([r for _, r in kept], native)
                parts.append((pl.Series([p for p, _ in kept], dtype=pl.UInt32), table, extras))
        if not parts:
            return rejects
        order = pl.concat([p[0] for p in parts])
        known = pl.concat([p[1] for p in parts], how="vertical_relaxed")
        extras = [row for p in parts for row in p[2]]
        known = known.with_columns(order.alias("_pos")).sort("_pos").drop("_pos")
        extras = [extras[i] for i in order.arg_sort().to_list()]
        table, kinds = self._with_extras(known, extras)
        path = self._parts_dir / f"part-{len(self._parts):05d}.parquet"
        table.write_parquet(path)
        self._parts.append((path, kinds))
        self.rows += table.height
        return rejects

    # -- building table columns --------------------------------------------------------
    def _native(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The format's own columns of rows the emitter proved (Parquet)."""
        to, m = self.to, _E.struct
        messages = pl.col("messages")
        if to == "canonical":
            return frame.select(FRAME_SCHEMA.names())
        weight = emit.informative_weight(m)
        if to == "openai":
            return frame.select(messages.list.eval(m.with_fields(weight.alias("weight"))), pl.col("tools"))
        first = messages.list.first().struct
        has_system = (first.field("role") == "system").fill_null(False)
        if to == "sharegpt":
            hint = pl.col("meta").str.contains(emit.SYSTEM_TURN_HINT, literal=True).fill_null(False)
            column = has_system & ~hint
            body = pl.when(column).then(messages.list.slice(1)).otherwise(messages)
            speaker = m.field("role").replace({"user": "human", "assistant": "gpt", "tool": "observation"})
            turns = body.list.eval(pl.struct(speaker.alias("from"), m.field("content").alias("value"),
                                             weight.alias("weight"), m.field("extra").alias("extra")))
            return frame.select(turns.alias("conversations"),
                                pl.when(column).then(first.field("content")).otherwise(pl.lit("")).alias("system"),
                                pl.lit("").alias("tools"))
        body = pl.when(has_system).then(messages.list.slice(1)).otherwise(messages)
        contents = body.list.eval(m.field("content"))
        n = contents.list.len()
        pairs = contents.list.head(n - 2)
        history = pl.when(n > 2).then(_pairs(pairs))
        return frame.select(
            contents.list.get(-2, null_on_oob=True).alias("instruction"), pl.lit("").alias("input"),
            contents.list.last().alias("output"),
            pl.when(has_system).then(first.field("content")).otherwise(pl.lit("")).alias("system"),
            history.otherwise(pl.lit([], dtype=pl.List(pl.List(pl.String)))).alias("history"),
        )

    def _fast_extras(self, frame: pl.DataFrame) -> list[dict]:
        """Each row's meta keys, to spread into columns (not for canonical: meta stays)."""
        if self.to == "canonical":
            return [{}] * frame.height
        metas = frame["meta"]
        if self.to == "sharegpt":
            metas = metas.str.replace(r'(?:,)?"_sftdata":\{"system_turn":true\}\}$', "}")
        return [{} if m in ("{}", None) else json.loads(m) for m in metas.to_list()]

    def _from_rows(self, rows: list[dict], native: bool) -> tuple[pl.DataFrame, list[dict]]:
        """(format columns, extra keys per row) of reference rows."""
        columns = TABLE_COLUMNS[self.to]
        known = [{k: row.get(k) for k in columns} for row in rows]
        extras = [{k: v for k, v in row.items() if k not in columns} for row in rows]
        if not native:  # CSV: nested values as the format's own JSON text
            frame = pl.DataFrame([{k: (dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()}
                                  for r in known], schema={k: (pl.String if t.is_nested() else t)
                                                           for k, t in columns.items()})
            return frame, extras
        return pl.DataFrame([_native_row(self.to, r) for r in known], schema=columns), extras

    def _with_extras(self, known: pl.DataFrame, extras: list[dict]) -> tuple[pl.DataFrame, dict[str, str]]:
        names: dict[str, None] = {}
        for row in extras:
            names.update(dict.fromkeys(row))
        kinds, columns = {}, []
        for name in names:
            values = [row.get(name) for row in extras]
            kinds[name] = column_kind(values)
            columns.append(table_column(name, values, kinds[name]))
        return (known.hstack(columns) if columns else known), kinds

    # -- the end -------------------------------------------------------------------------
    def _finish(self) -> None:
        if self.kind in (".jsonl", ".json"):
            if self.kind == ".json":
                self._out.write(b"\n]\n" if self.rows else b"]\n")
            return
        kinds: dict[str, str] = {}
        for _, part_kinds in self._parts:
            for name, kind in part_kinds.items():
                kinds[name] = kind if kinds.get(name, kind) == kind else "json"
        json_columns = JSON_TEXT[self.to] + [n for n, k in kinds.items() if k == "json"]
        columns = dict(TABLE_COLUMNS[self.to])
        if self.kind == ".csv":
            columns = {k: (pl.String if t.is_nested() else t) for k, t in columns.items()}
        for name, kind in kinds.items():
            columns.setdefault(name, pl.String if kind == "json" else _KIND_DTYPE[kind])
        frames = [_unified(pl.scan_parquet(path), part_kinds, kinds, columns)
                  for path, part_kinds in self._parts]
        query = pl.concat(frames, how="vertical") if frames else pl.LazyFrame(schema=columns)
        if self.kind == ".parquet":
            info = {"format": self.to, "message_extra": "extra"}
            query.sink_parquet(self._tmp, metadata=parquet_metadata(json_columns, **info))
        elif self.compression:  # CSV, then compressed into the target's temp file
            plain = self._parts_dir / "all.csv"
            query.sink_csv(plain)
            with open(plain, "rb") as f, open_compressed(self._tmp, "wb") as out:
                shutil.copyfileobj(f, out, 8 << 20)
        else:
            query.sink_csv(self._tmp)


_KIND_DTYPE = {"str": pl.String, "bool": pl.Boolean, "int": pl.Int64, "float": pl.Float64}


def _as_json(name: str, kind: str) -> pl.Expr:
    """A column of ``kind`` as JSON text (for a column whose kinds differ between parts)."""
    if kind == "json":
        return col(name)
    if kind == "str":
        return pl.struct(col(name).alias("")).struct.json_encode().str.slice(4).str.head(-1) \
            .pipe(lambda e: pl.when(col(name).is_not_null()).then(e))
    return col(name).cast(pl.String)


def _unified(part: pl.LazyFrame, part_kinds: dict[str, str], kinds: dict[str, str],
             columns: dict[str, pl.DataType]) -> pl.LazyFrame:
    exprs = []
    names = part.collect_schema().names()
    for name, dtype in columns.items():
        if name not in names:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
        elif kinds.get(name) == "json" and part_kinds.get(name) != "json":
            exprs.append(_as_json(name, part_kinds[name]).alias(name))
        else:
            exprs.append(col(name).cast(dtype).alias(name))
    return part.select(exprs)


def _pairs(contents: pl.Expr) -> pl.Expr:
    """A flat list of alternating user/assistant contents as ``[[u, a], ...]``."""
    i = pl.int_range(pl.len())
    return contents.list.eval(pl.concat_list(_E, _E.shift(-1)).filter(i % 2 == 0))


def _extra_text(obj: dict, known: tuple[str, ...]) -> str | None:
    extra = {k: v for k, v in obj.items() if k not in known}
    return dumps(extra) if extra else None


def _native_row(to: str, row: dict) -> dict:
    """A reference row's format columns in their Parquet shape (extra keys as JSON)."""
    if to == "sharegpt":
        turns = [{"from": t["from"], "value": t["value"], "weight": t.get("weight"),
                  "extra": _extra_text(t, ("from", "value", "weight"))} for t in row.get("conversations") or []]
        tools = row.get("tools")
        return {**row, "conversations": turns, "tools": tools if tools is None or isinstance(tools, str) else dumps(tools)}
    if to == "openai":
        messages = []
        for m in row.get("messages") or []:
            calls = m.get("tool_calls")
            if calls is not None:
                calls = [{"id": c.get("id"), "type": c.get("type", "function"), "function": c["function"],
                          "extra": _extra_text(c, ("id", "type", "function"))} for c in calls]
            messages.append({"role": m["role"], "content": m["content"], "tool_calls": calls,
                             "name": m.get("name"), "tool_call_id": m.get("tool_call_id"),
                             "weight": m.get("weight"),
                             "extra": _extra_text(m, ("role", "content", "tool_calls", "name",
                                                      "tool_call_id", "weight"))})
        tools = row.get("tools")
        return {"messages": messages, "tools": None if tools is None else dumps(tools)}
    if to == "canonical":
        from sftdata.records import frame_from_records

        return frame_from_records([row]).row(0, named=True)
    return row


def write_records(frame: pl.DataFrame, path: str | os.PathLike, to: str) -> list[dict]:
    """Write the canonical frame to ``path`` in format ``to`` (atomically); returns rejects."""
    with RecordWriter(path, to) as writer:
        return writer.write(frame)

