"""JSON text with polars expressions: encoding strings and objects, and the counts that
prove a decoded line holds exactly what its text holds.

polars' ``str.json_decode`` into a fixed dtype is fast but forgiving: it ignores keys
the dtype lacks, reads ``null`` and a missing key alike, keeps the first of two
duplicate keys (Python keeps the last), reads a number or a boolean into a String field
as its text, and wraps a lone value into a List field. ``Tally`` collects, from what
was decoded, how many of five marks the text must then contain, and ``proven``
compares them with the marks the text really contains:

- key ends, ``"<whitespace>:`` (inside a string a quote is always escaped, but an
  escaped quote can be followed by a colon: the text can only have more);
- quote characters outside strings (two per key, two per string value);
- escaped quotes ``\\"`` (one per quote character inside a decoded string);
- ``[`` and ``{`` characters (one per list or object, plus those inside strings, which
  JSON never escapes).

Equal counts leave no room for an ignored key, a duplicate, a ``null``, a number read as
a string, a string read as a list or as JSON, or a lone value wrapped into a list. Lines
with an escaped UTF-16 surrogate (``\\ud800``..) count an extra key end: polars decodes
a lone one as NUL, so those lines always go to the reference path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

KEY_END = r'"[ \t\r\n]*:|\\u[dD][89a-fA-F]'
# A literal backslash-u inside a string: flagged (as a key end) where a JSON-kind field
# is read, so a string holding JSON with \u escapes is never taken for that JSON.
LITERAL_BACKSLASH_U = r"\\\\u"
_ESCAPE_PAIRS = r'\\\\|\\"'
_ESCAPED_BACKSLASHES = r"\\\\"


def json_string(expr: pl.Expr) -> pl.Expr:
    """The JSON literal of a String expression (``"..."``, or ``null``), escaped exactly
    as Python's ``json.dumps(..., ensure_ascii=False)`` escapes."""
    return pl.struct(expr.alias("")).struct.json_encode().str.slice(4).str.head(-1)


def json_scalar(expr: pl.Expr, kind: str) -> pl.Expr:
    """A decoded value as JSON text (null stays null): ``str`` values quoted, number and
    boolean text as it is."""
    return pl.when(expr.is_not_null()).then(json_string(expr)) if kind == "str" else expr


def json_object(pairs: list[tuple[str, pl.Expr]]) -> pl.Expr:
    """``{"key":value,...}`` of the pairs whose value JSON text is not null; null when none
    is. Keys are written as JSON strings; values must already be JSON text."""
    if not pairs:
        return pl.lit(None, dtype=pl.String)
    import json

    pieces = [pl.when(value.is_not_null()).then(pl.lit("," + json.dumps(key, ensure_ascii=False) + ":")
                                                + value) for key, value in pairs]
    body = pl.concat_str(pieces, ignore_nulls=True)
    return pl.when(body != "").then(pl.lit("{") + body.str.slice(1) + pl.lit("}"))


def _count(expr: pl.Expr, char: str) -> pl.Expr:
    return expr.str.count_matches(char, literal=True).fill_null(0)


@dataclass
class Tally:
    """What a decoded row promises its text holds (see the module docstring)."""

    keys: list[pl.Expr] = field(default_factory=list)
    quotes: list[pl.Expr] = field(default_factory=list)
    escaped: list[pl.Expr] = field(default_factory=list)
    brackets: list[pl.Expr] = field(default_factory=list)
    braces: list[pl.Expr] = field(default_factory=list)

    def key(self, present: pl.Expr) -> None:
        """One key that is there where ``present``."""
        n = present.cast(pl.Int64)
        self.keys.append(n)
        self.quotes.append(2 * n)

    def string(self, value: pl.Expr) -> None:
        """A string value (null: absent)."""
        self.quotes.append(value.is_not_null().cast(pl.Int64) * 2)
        self.inside(value)

    def inside(self, text: pl.Expr) -> None:
        """Characters of a decoded string, which appear as they are (quotes escaped)."""
        self.escaped.append(_count(text, '"'))
        self.brackets.append(_count(text, "["))
        self.braces.append(_count(text, "{"))

    def container(self, present: pl.Expr, kind: str) -> None:
        """A list (``[``) or an object (``{``) that is there where ``present``."""
        (self.brackets if kind == "list" else self.braces).append(present.cast(pl.Int64))

    def json(self, text: pl.Expr) -> None:
        """A value read as compact JSON text (``json_path_match``): all its marks count."""
        self.keys.append(text.str.count_matches(KEY_END).fill_null(0))
        escaped = (text.str.count_matches(_ESCAPE_PAIRS) - text.str.count_matches(_ESCAPED_BACKSLASHES)
                   ).fill_null(0)
        self.quotes.append(_count(text, '"') - escaped)
        self.escaped.append(escaped)
        self.brackets.append(_count(text, "["))
        self.braces.append(_count(text, "{"))

    def merge(self, other: Tally) -> None:
        for name in ("keys", "quotes", "escaped", "brackets", "braces"):
            getattr(self, name).extend(getattr(other, name))

    def totals(self) -> dict[str, pl.Expr]:
        return {name: pl.sum_horizontal(getattr(self, name)) if getattr(self, name) else pl.lit(0)
                for name in ("keys", "quotes", "escaped", "brackets", "braces")}

    def summed_over(self, lst: pl.Expr) -> Tally:
        """This tally (written for one list element, ``pl.element()``) summed over ``lst``."""
        out = Tally()
        for name, total in self.totals().items():
            getattr(out, name).append(lst.list.eval(total).list.sum().fill_null(0))
        return out


def text_marks(text: pl.Expr, flag_backslash_u: bool = False) -> dict[str, pl.Expr]:
    """The five marks a JSON text really holds (see the module docstring)."""
    keys = text.str.count_matches(KEY_END)
    if flag_backslash_u:
        keys = keys + text.str.count_matches(LITERAL_BACKSLASH_U)
    escaped = text.str.count_matches(_ESCAPE_PAIRS) - text.str.count_matches(_ESCAPED_BACKSLASHES)
    return {"keys": keys, "quotes": _count(text, '"') - escaped, "escaped": escaped,
            "brackets": _count(text, "["), "braces": _count(text, "{")}


def proven(text: pl.Expr, tally: Tally, flag_backslash_u: bool = False) -> pl.Expr:
    """True where the text holds exactly the marks ``tally`` promises."""
    actual, expected = text_marks(text, flag_backslash_u), tally.totals()
    return pl.all_horizontal([actual[k] == expected[k] for k in actual]).fill_null(False)


def json_depth(texts: pl.Series) -> np.ndarray:
    """The nesting depth of each compact JSON text (``[[1]]``: 2; null: 0), counting
    only brackets outside strings."""
    brackets = (texts.fill_null("").str.replace_all(r'"(?:[^"\\]|\\.)*"', "")
                .str.replace_all(r"[^\[\]{}]", ""))
    lengths = brackets.str.len_bytes().to_numpy().astype(np.int64)
    data = brackets.cast(pl.Binary).to_list()
    depth = np.zeros(len(texts), dtype=np.int64)
    if not lengths.any():
        return depth
    flat = np.frombuffer(b"".join(data), dtype=np.uint8)
    step = np.where((flat == ord("[")) | (flat == ord("{")), 1, -1)
    level = np.cumsum(step)  # each text is balanced, so levels restart at 0 between texts
    ends = np.cumsum(lengths)
    has = lengths > 0
    starts = (ends - lengths)[has]
    depth[has] = np.maximum.reduceat(level, starts)
    return depth
