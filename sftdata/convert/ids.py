"""Record ids for a whole frame at once, equal to ``sftdata.records.record_id``.

The id of a record without one of its own is ``hash_id(id_text(messages, tools))``
(see ``sftdata.records.id_text``: roles, stripped contents and tool calls joined by
control-character separators, hashed with XXH3-64). polars builds the id text of every
row; only the hashing is a Python loop over bytes (about 0.3 us a record). Rows with
``tools`` are hashed from their records (the tools' JSON needs sorted keys), which is
how the reference path makes them anyway.
"""

from __future__ import annotations

import polars as pl
import xxhash

from sftdata import text as tx
from sftdata.records import _CALL, _FIELD, _MSG

_E = pl.element()


def id_text_expr(messages: pl.Expr) -> pl.Expr:
    """``sftdata.records.id_text`` of each row's messages (a record without tools)."""
    m = _E.struct
    calls = m.field("tool_calls").list.eval(pl.concat_str([
        pl.lit(_CALL), _E.struct.field("function").struct.field("name"), pl.lit(_FIELD),
        _E.struct.field("function").struct.field("arguments")])).list.join("").fill_null("")
    one = pl.concat_str([m.field("role"), pl.lit(_FIELD), tx.strip(m.field("content").fill_null("")), calls])
    return messages.list.eval(one).list.join(_MSG)


def hash_texts(texts: pl.Series) -> pl.Series:
    """``hash_id`` of every text (null stays null)."""
    digest = xxhash.xxh3_64_hexdigest
    return pl.Series([None if t is None else digest(t) for t in texts.cast(pl.Binary).to_list()],
                     dtype=pl.String)


def computed_ids(frame: pl.DataFrame, need: pl.Series) -> pl.Series:
    """Ids of the rows where ``need`` (their messages; no tools), null elsewhere."""
    if need.all():
        return hash_texts(frame.select(id_text_expr(pl.col("messages"))).to_series())
    out = pl.Series([None] * frame.height, dtype=pl.String)
    if need.any():
        texts = frame.filter(need).select(id_text_expr(pl.col("messages"))).to_series()
        out = out.scatter(need.arg_true(), hash_texts(texts))
    return out
