"""Column and field names taken from users' files, as polars expressions.

polars reads ``*`` as every column and a name that starts with ``^`` and ends with ``$``
as a regular expression: ``pl.col("^$")`` matches no column, ``pl.col("^[\\w]+$")`` and
``pl.col("*")`` every column, and addressing such a *struct field* panics inside
polars. Files other tools wrote may hold any name, so a column whose name comes from
the data is addressed through ``col`` and a struct's fields through ``struct_fields``.
"""

from __future__ import annotations

import polars as pl
import polars.selectors as cs


def is_pattern(name: str) -> bool:
    """True for a name polars would take as a pattern (a wildcard or regular expression)."""
    return name == "*" or (name.startswith("^") and name.endswith("$"))


def col(name: str) -> pl.Expr:
    """The column called exactly ``name``, whatever characters it holds."""
    return cs.by_name(name).as_expr() if is_pattern(name) else pl.col(name)


def struct_fields(expr: pl.Expr, dtype: pl.Struct) -> list[pl.Expr]:
    """An expression for each field of the struct ``expr`` (in ``dtype.fields`` order),
    whatever the names hold: fields are renamed to plain names first when any is a pattern."""
    names = [f.name for f in dtype.fields]
    if not any(is_pattern(n) for n in names):
        return [expr.struct.field(n) for n in names]
    plain = expr.struct.rename_fields([f"f{i}" for i in range(len(names))])
    return [plain.struct.field(f"f{i}") for i in range(len(names))]
