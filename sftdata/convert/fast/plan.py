"""Alpaca JSON Lines -> ShareGPT / OpenAI JSON Lines, vectorised in polars: the plan and
the checked route.

The per-record path (``read_canonical`` then ``write_records``) spends most of its time
in Python per record; this path decodes, checks and re-encodes whole blocks of lines
in Rust. Its contract is to give, for every input line, exactly what the per-record
path gives: the same output rows (equal once parsed) in the same order, and the same
rejects. It does so by sending a line through the vectorised route only when polars
checks *prove* that the per-record converter would turn it into the same row without
a reject; every other line goes through the per-record functions themselves, at its
own line number. ``fast_run`` runs a plan; ``fast_sized`` proves a compactly written
file clean by its size instead of line by line. Why each check of the checked route
is needed (each one found by testing polars):

- ``str.json_decode`` into String fields turns numbers and booleans into their text
  (``3`` -> ``"3"``): a field whose text reads like a number, boolean or null goes
  per-record (it may have been a non-string, which the converter rejects).
- polars keeps the first of two duplicate keys where Python keeps the last, and reads
  ``null`` and a missing key alike: every key ends with an unescaped quote followed by
  a colon, and inside a string a quote is always escaped, so the count of ``"<ws>:`` is
  at least the number of keys; a line goes vectorised only when that count equals its
  number of non-null known fields (so: no duplicate, null, ``history`` or unknown key).
- polars decodes an escaped lone surrogate (``\\ud800``) as NUL: any escape in
  ``\\ud800``-``\\udfff`` goes per-record.
- Python's ``str.strip`` and polars disagree on a few whitespace characters: a text
  counts as non-empty here only if it has a character that is whitespace for neither.
- A block that polars cannot decode at all (bad JSON, a non-object line, an array or
  object where a string belongs) is split in halves until the bad lines are isolated.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sftdata.colnames import col
from sftdata.convert.reference import records_to_rows, rows_to_records
from sftdata.errors import UserError
from sftdata.formats import alpaca, check_format, detect_format
from sftdata.inputs import compression
from sftdata.io import dumps, extension
from sftdata.rawrows import BOM, RawRow, decode_line
from sftdata.records import HINTS_KEY, frame_from_records, records_from_frame

TARGETS = ("sharegpt", "openai")
SMALLEST_SPLIT = 256  # below this many lines a block that fails to decode goes per-record
REQUIRED = alpaca.REQUIRED
OPTIONAL = ("input", "system")  # history goes per-record
# Keys that the writers drop or would set themselves: rows carrying them go per-record.
_RESERVED = {"sharegpt": {"conversations", "system", "tools"}, "openai": {"messages", "tools"}}
_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,63}")

# A text is non-empty for the per-record path when ``str.strip`` leaves something.
# Every character Python counts as whitespace lies in the BMP (Unicode 15); the regex
# class ``\s`` is Unicode White_Space, and the characters only Python strips are added.
_PY_SPACE = "".join(chr(c) for c in range(0x10000) if chr(c).isspace())
_WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    chr(c) for c in range(0x2000, 0x200B))
_NON_SPACE = "[^\\s" + "".join(f"\\x{{{ord(c):x}}}" for c in _PY_SPACE if c not in _WHITE_SPACE) + "]"
_COERCED = r"^(?:[-+]?[0-9][0-9.eE+\-]*|true|false|null)$|^[\[{]"
# Key ends, plus escapes of lone surrogates (which only add to the count: see above).
_KEY_END = r'"[ \t\r\n]*:|\\u[dD][89a-fA-F]'
_BLANK = r"^[ \t\n\r\x0b\x0c]*$"  # bytes.strip() whitespace: such lines are skipped

@dataclass
class Plan:
    """A conversion the vectorised path can do; ``extras`` are string columns to carry.

    ``system_seen``: a row among the first ones has a system prompt, so the output rows
    are unlikely to all have one shape.
    """

    input: Path
    output: Path
    to: str
    extras: tuple[str, ...]
    source: str
    system_seen: bool = False


def _head_rows(path: Path, limit: int = 101) -> list[dict]:
    """The first ``limit`` decodable rows, as ``read_canonical`` sees them for detection."""
    good: list[dict] = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            line = line[:-1] if line.endswith(b"\n") else line
            if line.strip():
                row = decode_line(number, line.rstrip(b"\r"))
                if row.data is not None:
                    good.append(row.data)
                    if len(good) >= limit:
                        break
    return good


def plan(input: os.PathLike, output: os.PathLike, to: str, fmt: str | None = None) -> Plan | None:
    """A ``Plan`` when this path applies (Alpaca .jsonl -> ShareGPT/OpenAI .jsonl), else None."""
    if "-" in (str(input), str(output)) or compression(input) or compression(output):
        return None  # pipes and compressed files take the general path
    input, output = Path(input), Path(output)
    try:
        if extension(input) != ".jsonl" or extension(output) != ".jsonl":
            return None
    except UserError:
        return None
    if to not in TARGETS or not input.is_file() or not os.access(input, os.R_OK):
        return None
    with open(input, "rb") as f:
        if f.read(3) == BOM:  # the general reader skips it; this route does not
            return None
    head = _head_rows(input)
    if not head:
        return None
    if (check_format(fmt) if fmt else detect_format(head)) != "alpaca":
        return None
    if all(row.get("history") == [] for row in head):  # as sftdata writes Alpaca files
        return None  # this route sends history rows per-record; the general path is vectorised
    skip = set(alpaca.FIELDS) | _RESERVED[to] | {HINTS_KEY}
    seen: dict[str, None] = {}
    for row in head:
        for key, value in row.items():
            if key not in skip and isinstance(value, str) and _SIMPLE_KEY.fullmatch(key):
                seen[key] = None
    system_seen = any(isinstance(row.get("system"), str) and row["system"] for row in head)
    return Plan(input, output, to, tuple(seen), input.name, system_seen)


def _decoded(lf: pl.LazyFrame, fields: tuple[str, ...]) -> pl.LazyFrame:
    """Non-blank lines (``n``, ``text``) with the decoded fields and the key count."""
    dtype = pl.Struct({f: pl.String for f in fields})
    return (
        lf.filter(~pl.col("text").str.contains(_BLANK))
        .with_columns(
            pl.col("text").str.json_decode(dtype).alias("_d"),
            pl.col("text").str.count_matches(_KEY_END).alias("_keys"),
        )
        .unnest("_d")
    )


def _is_clean(fields: tuple[str, ...], count_keys: bool = True) -> pl.Expr:
    """True where the per-record path surely converts the row, and to what we build.

    ``count_keys=False`` leaves out the key count, for rows proven whole another way.
    """
    present = [pl.col(f).is_not_null() for f in fields]
    looks_typed = [pl.col(f).is_not_null() & pl.col(f).str.contains(_COERCED) for f in fields]
    has_prompt = (pl.col("instruction").str.contains(_NON_SPACE)
                  | pl.col("input").fill_null("").str.contains(_NON_SPACE))
    keys_known = (pl.col("_keys") == pl.sum_horizontal(present)) if count_keys else pl.lit(True)
    return (
        pl.all_horizontal(pl.col(f).is_not_null() for f in REQUIRED)
        & ~pl.any_horizontal(looks_typed)
        & keys_known
        & has_prompt
        & pl.col("output").str.contains(_NON_SPACE)
    ).fill_null(False)


def analysed(decoded: pl.LazyFrame, p: Plan, count_keys: bool = True, keep: tuple[pl.Expr, ...] = ()
              ) -> pl.LazyFrame:
    """Per line: ``n``, whether it is clean, the texts the output needs, else its ``text``.

    ``keep``: more columns to compute from the decoded fields.
    """
    fields = (*REQUIRED, *OPTIONAL, *p.extras)
    clean = _is_clean(fields, count_keys)
    input_ = pl.col("input").fill_null("")
    prompt = pl.when(input_ != "").then(pl.concat_str(pl.col("instruction"), pl.lit(alpaca.JOIN), input_))
    prompt = prompt.otherwise(pl.col("instruction"))
    return decoded.select(
        "n",
        clean.alias("_clean"),
        pl.concat_arr(turn(p.to, 1, prompt), turn(p.to, 2, pl.col("output"))).alias("_turns"),
        pl.when(pl.col("system") != "").then(pl.col("system")).alias("system"),
        *p.extras,
        pl.when(clean).then(None).otherwise(pl.col("text")).alias("text"),
        *keep,
    )


def analyse_lines(first: int, data: bytes, count: int, p: Plan) -> tuple[pl.DataFrame, dict[int, bytes]]:
    """``analysed`` for a block, and the raw bytes of its lines that are not UTF-8.

    One streaming query when polars can decode every line; otherwise the lines are split
    in Python and the block is halved until the lines polars rejects are isolated.
    """
    fields = (*REQUIRED, *OPTIONAL, *p.extras)
    try:
        lines = pl.scan_lines(data, name="text", row_index_name="n", row_index_offset=first, n_rows=count)
        return analysed(_decoded(lines, fields), p).collect(), {}
    except pl.exceptions.PolarsError:
        pass
    raw = data.split(b"\n", count)[:count]
    frame = pl.DataFrame({"text": _text_column(raw)}).with_row_index("n", offset=first)
    good = frame.filter(pl.col("text").is_not_null() & ~pl.col("text").str.contains(_BLANK))
    bad = frame.filter(pl.col("text").is_null())
    not_utf8 = {n: raw[n - first] for n in bad["n"]}
    return pl.concat([_split_decoded(good, p), _unclean(bad, p)]).sort("n"), not_utf8


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


def _unclean(frame: pl.DataFrame, p: Plan) -> pl.DataFrame:
    """``analysed``'s columns for lines that all go per-record."""
    _, (who, what), _ = TURNS[p.to]
    turns = pl.Array(pl.Struct({who: pl.String, what: pl.String}), 2)
    return frame.select("n", pl.lit(False).alias("_clean"), pl.lit(None, turns).alias("_turns"),
                        *(pl.lit(None, pl.String).alias(c) for c in ("system", *p.extras)), "text")


def _split_decoded(frame: pl.DataFrame, p: Plan) -> pl.DataFrame:
    """``analysed`` for a block, halving it until the lines polars cannot decode are alone."""
    fields = (*REQUIRED, *OPTIONAL, *p.extras)
    try:
        return analysed(_decoded(frame.lazy(), fields), p).collect()
    except pl.exceptions.PolarsError:
        if frame.height <= SMALLEST_SPLIT:
            return _unclean(frame, p)
        half = frame.height // 2
        return pl.concat([_split_decoded(frame[:half], p), _split_decoded(frame[half:], p)])


def per_record(rows: list[RawRow], to: str, source: str):
    """Lines through the per-record functions: ((line, output) pairs, read and write rejects)."""
    records, read_rejects = rows_to_records(rows, "alpaca", source)
    records = records_from_frame(frame_from_records(records))
    failed = {r["location"] for r in read_rejects}
    numbers = [row.location for row in rows if row.error is None and row.location not in failed]
    pairs, write_rejects = [], []
    for number, record in zip(numbers, records, strict=True):
        out_rows, rejected = records_to_rows([record], to)
        pairs += [(number, dumps(r)) for r in out_rows]
        write_rejects += rejected
    return pairs, read_rejects, write_rejects


TURNS = {"sharegpt": ("conversations", ("from", "value"), ("system", "human", "gpt")),
          "openai": ("messages", ("role", "content"), ("system", "user", "assistant"))}


def turn(to: str, speaker: int, text: pl.Expr) -> pl.Expr:
    _, (who, what), speakers = TURNS[to]
    return pl.struct(pl.lit(speakers[speaker]).alias(who), text.alias(what))


def output_frame(part: pl.DataFrame, to: str, columns: list[str]) -> pl.DataFrame:
    """Clean rows of one shape as output rows: the turns, then the optional columns."""
    name = TURNS[to][0]
    if to == "openai" and "system" in columns:  # the system prompt is the first message
        turns = part.select(pl.concat_arr(turn(to, 0, pl.col("system")), pl.col("_turns").arr.get(0),
                                          pl.col("_turns").arr.get(1)).alias(name))
    else:
        turns = part.select(pl.col("_turns").alias(name))
    if to == "sharegpt":  # every column of the format, empty where absent
        if "system" in columns:
            turns = turns.hstack(part.select(pl.col("system").fill_null("")))
        else:
            turns = turns.with_columns(pl.lit("").alias("system"))
        turns = turns.with_columns(pl.lit("").alias("tools"))
    kept = [c for c in columns if c != "system"]
    return turns.hstack(part.select(kept))


def output_frame_columns(to: str) -> list[pl.Expr]:
    """``output_frame`` of rows without optional columns, as expressions (for a sink)."""
    turns = [pl.col("_turns").alias(TURNS[to][0])]
    return turns + ([pl.lit("").alias("system"), pl.lit("").alias("tools")] if to == "sharegpt" else [])


def write_rows_out(result: pl.DataFrame, slow: list[tuple[int, str]], p: Plan, out) -> int:
    """Write clean rows (grouped by which optional keys they have) and per-record rows in order."""
    optional = ["system", *p.extras]
    if not slow and result["_clean"].all():  # the common case: written as is, without copies
        missing = result.select(col(c).null_count() for c in optional).row(0) if optional else ()
        if all(m in (0, result.height) for m in missing):
            frame = output_frame(result, p.to, [c for c, m in zip(optional, missing) if m == 0])
            frame.write_ndjson(out)
            return frame.height
    flags = [col(c).is_not_null().alias(f"_has_{c}") for c in optional]
    clean = result.filter("_clean").with_columns(flags)
    parts = clean.partition_by([f"_has_{c}" for c in optional], maintain_order=True, as_dict=True) \
        if clean.height else {}
    frames = []
    for key, part in parts.items():
        columns = [c for c, has in zip(optional, key) if has]
        frames.append((part["n"], output_frame(part, p.to, columns)))
    if len(frames) == 1 and not slow:
        frames[0][1].write_ndjson(out)
        return frames[0][1].height
    lines = []
    for numbers, frame in frames:
        buf = io.BytesIO()
        frame.write_ndjson(buf)
        text = pl.scan_lines(buf.getvalue(), name="json").collect()["json"]
        lines.append(pl.DataFrame({"n": numbers, "json": text}))
    lines.append(pl.DataFrame(slow, schema={"n": result.schema["n"], "json": pl.String}, orient="row"))
    merged = pl.concat(lines).sort("n")
    if merged.height:
        merged.select("json").write_csv(out, include_header=False, quote_style="never")
    return merged.height
