"""Content filters: refusals and AI boilerplate, blocklist, regex, and the Self-Instruct
instruction heuristics (the language filter is in ``sftdata.steps.language``).

Phrase and keyword lists live in ``sftdata/data/*.txt`` (one per line, ``#`` comments)
and can be replaced by a file of the user's own.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field, field_validator

from sftdata import text as tx
from sftdata.errors import UserError
from sftdata.steps.base import Texts
from sftdata.steps.filters_text import ExprFilter, Strict, first_reason, on_rows, text
from sftdata.steps.registry import register

Side = Literal["prompt", "response", "both"]


def read_terms(name_or_path: str) -> list[str]:
    """Lines of a packaged list (``refusals.txt``...) or of a user file; ``#`` = comment."""
    path = Path(name_or_path)
    if path.exists():
        body = path.read_text(encoding="utf-8")
    else:
        try:
            body = resources.files("sftdata.data").joinpath(name_or_path).read_text(encoding="utf-8")
        except (FileNotFoundError, OSError):
            raise UserError(f"{name_or_path}: no such term file") from None
    return [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def side_text(side: str) -> pl.Expr:
    """The prompt, the response, or both joined by a newline, over ``Texts.frame``."""
    if side == "both":
        return pl.concat_str([text("prompt"), text("response")], separator="\n")
    return text(side)


def whole_word_pattern(terms: list[str]) -> str:
    """Case-insensitive alternation; word boundaries only around terms that start/end in
    a word character of a spaced script (CJK has no boundaries between characters)."""
    parts = []
    for term in sorted(set(terms), key=len, reverse=True):
        body = re.escape(term)
        cjk = tx.has_no_space_script(term)
        left = r"\b" if not cjk and re.match(r"\w", term) else ""
        right = r"\b" if not cjk and re.search(r"\w$", term) else ""
        parts.append(f"{left}{body}{right}")
    return "(?i)(?:" + "|".join(parts) + ")"


def _with_curly_quotes(phrases: list[str]) -> list[str]:
    """Each phrase, plus its typographic-apostrophe spelling ("can’t" for "can't")."""
    out = []
    for phrase in phrases:
        out.append(phrase)
        if "'" in phrase:
            out.append(phrase.replace("'", "\u2019"))
    return out


class RefusalParams(Strict):
    refusals: str = Field("refusals.txt", description="Refusal phrases: a packaged list name or a file path.")
    boilerplate: str = Field("ai_boilerplate.txt", description="AI-boilerplate phrases: a packaged list name or a file path.")


@register
class RefusalFilter(ExprFilter):
    """Responses that refuse (``refusal``) or carry AI boilerplate (``ai_boilerplate``),
    from multilingual phrase lists; straight and curly apostrophes both match."""

    name = "refusal"
    Params = RefusalParams
    reason_codes = ("refusal", "ai_boilerplate")

    def expr(self, texts: Texts) -> pl.Expr:
        response = text("response")
        refusals = _with_curly_quotes(read_terms(self.params.refusals))
        boiler = _with_curly_quotes(read_terms(self.params.boilerplate))
        # One pass over every response finds the candidates; only those are classified.
        hit = response.str.contains_any(refusals + boiler, ascii_case_insensitive=True)
        return on_rows(texts.frame, hit, first_reason([
            (response.str.contains_any(refusals, ascii_case_insensitive=True), "refusal"),
            (response.str.contains_any(boiler, ascii_case_insensitive=True), "ai_boilerplate"),
        ]))


class BlocklistParams(Strict):
    terms: list[str] = Field([], description="Blocked terms (whole word, case-insensitive).")
    terms_file: str | None = Field(None, description="File of blocked terms, one per line (# comments).")
    side: Side = Field("both", description="Text to search.")


@register
class BlocklistFilter(ExprFilter):
    """Any blocked term as a whole word, case-insensitively (``blocklist``)."""

    name = "blocklist"
    Params = BlocklistParams
    path_params = ("terms_file",)
    reason_codes = ("blocklist",)

    def expr(self, texts: Texts) -> pl.Expr:
        p = self.params
        terms = list(p.terms) + (read_terms(p.terms_file) if p.terms_file else [])
        if not terms:
            return pl.lit(None, dtype=pl.String)
        pattern = whole_word_pattern(terms)
        return first_reason([(side_text(p.side).str.contains(pattern), "blocklist")])


class RegexParams(Strict):
    pattern: str = Field(description="Regular expression (Rust regex syntax, as polars uses).")
    side: Side = Field("both", description="Text to search.")
    reason: str = Field("regex", pattern=r"^[a-z0-9_:]+$", description="Reason code for the rejects.")
    drop_if_match: bool = Field(True, description="Drop matching records (false: drop records that do not match).")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            pl.Series([""]).str.contains(value)
        except pl.exceptions.PolarsError as exc:
            raise ValueError(f"invalid regex: {str(exc).splitlines()[0]}") from None
        return value


@register
class RegexFilter(ExprFilter):
    """Records matching (or not matching) a regular expression (reason: ``reason``)."""

    name = "regex"
    Params = RegexParams
    reason_codes = ("regex",)

    def expr(self, texts: Texts) -> pl.Expr:
        p = self.params
        hit = side_text(p.side).str.contains(p.pattern)
        return first_reason([(hit if p.drop_if_match else ~hit, p.reason)])


class SelfInstructParams(Strict):
    min_words: int = Field(3, ge=0, description="Fewest words in the instruction (CJK characters count as words).")
    max_words: int = Field(150, ge=1, description="Most words in the instruction.")
    keywords: str = Field("unproducible_keywords.txt", description="Phrases asking for output a text model cannot produce (images, files, plots): packaged list or file.")


@register
class SelfInstructFilter(ExprFilter):
    """Self-Instruct's instruction heuristics (``instruction_too_short``,
    ``instruction_too_long``, ``starts_with_punctuation``, ``unproducible_output``)."""

    name = "self_instruct"
    Params = SelfInstructParams
    reason_codes = ("instruction_too_short", "instruction_too_long",
                    "starts_with_punctuation", "unproducible_output")

    def expr(self, texts: Texts) -> pl.Expr:
        p = self.params
        pattern = whole_word_pattern(read_terms(p.keywords))
        return first_reason(instruction_checks(text("prompt"), p.min_words, p.max_words, pattern))


# Opening quotes/brackets and Spanish inverted marks are how instructions start.
LEADING_PUNCTUATION = r"^\s*[\p{P}&&[^\"'“‘«¿¡(\[「『【《]]"


def instruction_checks(prompt: pl.Expr, min_words: int, max_words: int,
                       unproducible: str | None) -> list[tuple[pl.Expr, str]]:
    """Self-Instruct's instruction heuristics as (condition, reason) pairs: the filter
    step and the generator (``sftdata.generate.filters``) both run these."""
    words = tx.word_count(prompt)
    checks = [(words < min_words, "instruction_too_short"), (words > max_words, "instruction_too_long"),
              (prompt.str.contains(LEADING_PUNCTUATION), "starts_with_punctuation")]
    if unproducible:
        checks.append((prompt.str.contains(unproducible), "unproducible_output"))
    return checks

