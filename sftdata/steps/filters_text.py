"""Text-shape filters: length, empty turns, echoed prompts, markup, encoding, symbols.

Every filter computes its reasons as one polars expression, so the default set stays
fast on millions of records. The expression is evaluated on ``Texts.frame``: the prompt
(all user turns, ``PROMPT``) and the response (all assistant turns, ``RESPONSE``) that
the runner computed once, beside the rows' ``messages``. Words are ``sftdata.text``'s.
"""

from __future__ import annotations

import logging
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from sftdata import text as tx
from sftdata.errors import UserError
from sftdata.steps.base import REASON, Filter, NoParams, Texts
from sftdata.steps.registry import register

log = logging.getLogger(__name__)


def text(side: str) -> pl.Expr:
    """The ``prompt`` or ``response`` column of ``Texts.frame``."""
    return pl.col(side)


def first_reason(pairs: list[tuple[pl.Expr, str]]) -> pl.Expr:
    """``when(c1).then(r1).when(c2)...otherwise(null)``; null when there is no pair."""
    if not pairs:
        return pl.lit(None, dtype=pl.String)
    chain = pl.when(pairs[0][0]).then(pl.lit(pairs[0][1]))
    for cond, reason in pairs[1:]:
        chain = chain.when(cond).then(pl.lit(reason))
    return chain.otherwise(pl.lit(None, dtype=pl.String))


def on_rows(frame: pl.DataFrame, mask: pl.Expr, expr: pl.Expr, dtype=pl.String) -> pl.Expr:
    """``expr`` evaluated only on the rows where ``mask`` holds (null elsewhere): the
    costly checks then run on the few candidate rows, not on millions."""
    rows = frame.select(mask.fill_null(False)).to_series()
    out = pl.repeat(None, frame.height, dtype=dtype, eager=True)
    if rows.any():
        out = out.scatter(rows.arg_true(), frame.filter(rows).select(expr.cast(dtype)).to_series())
    return pl.lit(out)


class ExprFilter(Filter):
    """A filter whose reasons are one polars expression (``expr``) over ``Texts.frame``."""

    def expr(self, texts: Texts) -> pl.Expr:
        raise NotImplementedError

    def reasons(self, frame: pl.DataFrame, texts: Texts) -> pl.Series:
        return texts.frame.select(self.expr(texts).alias(REASON)).to_series()


class Strict(BaseModel):
    """Params base of the filters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class LengthParams(Strict):
    unit: Literal["chars", "words", "tokens"] = Field("words", description="Count characters, words (CJK characters and emoji count as words) or tokenizer tokens.")
    tokenizer: str | None = Field(None, description="HF tokenizer name or folder for unit=tokens; without it (or without transformers) words are counted.")
    min_prompt: int | None = Field(None, ge=0, description="Fewest units in the prompt (user turns).")
    max_prompt: int | None = Field(None, ge=0, description="Most units in the prompt.")
    min_response: int | None = Field(1, ge=0, description="Fewest units in the response (assistant turns).")
    max_response: int | None = Field(None, ge=0, description="Most units in the response.")


def _token_counts(texts: pl.Series, name: str) -> pl.Series:
    try:
        from transformers import AutoTokenizer
    except ImportError:
        return None
    try:
        tok = AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # noqa: BLE001 - any loading failure is the user's option
        raise UserError(f"cannot load tokenizer {name!r}: {str(exc).splitlines()[0]}") from None
    ids = tok(texts.to_list(), add_special_tokens=False)["input_ids"]
    return pl.Series([len(x) for x in ids], dtype=pl.Int64)


@register
class LengthFilter(ExprFilter):
    """Length bounds on prompt and response separately (``too_short:prompt_words``...)."""

    name = "length"
    Params = LengthParams
    reason_codes = ("too_short:<side>_<unit>", "too_long:<side>_<unit>")

    def _counts(self, texts: Texts, side: str, lo, hi) -> pl.Expr:
        p = self.params
        t = text(side)
        frame = texts.frame
        if p.unit == "chars":
            return t.str.len_chars()
        if p.unit == "tokens" and p.tokenizer:
            counts = _token_counts(texts.side(side), p.tokenizer)
            if counts is not None:
                return pl.lit(counts)
            log.warning("transformers is not installed: counting words instead of tokens")
        # A word has at least one character, so words <= chars: rows whose character
        # count already settles both bounds need no word count (most rows).
        chars = t.str.len_chars()
        needed = pl.lit(False)
        if hi is not None:
            needed = needed | (chars > hi)
        if lo is not None and lo > 1:
            needed = needed | (chars >= lo)
        words = on_rows(frame, needed, tx.word_count(t), pl.UInt32)
        return pl.coalesce(words, chars)

    def expr(self, texts: Texts) -> pl.Expr:
        p = self.params
        unit = "tokens" if p.unit == "tokens" and p.tokenizer else ("chars" if p.unit == "chars" else "words")
        pairs = []
        for side in ("prompt", "response"):
            lo, hi = getattr(p, f"min_{side}"), getattr(p, f"max_{side}")
            if lo is None and hi is None:
                continue
            n = self._counts(texts, side, lo, hi)
            if lo == 1 and unit == "words":
                pairs.append((~tx.has_word(text(side)), f"too_short:{side}_{unit}"))
            elif lo is not None:
                pairs.append((n < lo, f"too_short:{side}_{unit}"))
            if hi is not None:
                pairs.append((n > hi, f"too_long:{side}_{unit}"))
        return first_reason(pairs)


@register
class EmptyTurnFilter(ExprFilter):
    """A user or assistant turn that is empty or whitespace only (``empty_turn``).

    An assistant turn that only makes tool calls has no content by design and passes.
    """

    name = "empty_turn"
    Params = NoParams
    reason_codes = ("empty_turn",)

    def expr(self, texts: Texts) -> pl.Expr:
        m = pl.element().struct
        empty = (
            m.field("role").is_in(["user", "assistant"])
            & (m.field("content").fill_null("").str.strip_chars() == "")
            & (m.field("tool_calls").list.len().fill_null(0) == 0)
        )
        return first_reason([(pl.col("messages").list.eval(empty).list.any(), "empty_turn")])


class EchoParams(Strict):
    min_repeat_chars: int = Field(20, ge=1, description="A response contained in its prompt is dropped only from this many characters (short answers like 'Positive' are often quoted in the prompt).")


@register
class EchoFilter(ExprFilter):
    """Output identical to the input (``output_equals_input``), or a response that only
    repeats part of the prompt (``response_repeats_prompt``). Case, punctuation and
    spacing are ignored."""

    name = "echo"
    Params = EchoParams
    reason_codes = ("output_equals_input", "response_repeats_prompt")

    def expr(self, texts: Texts) -> pl.Expr:
        # Only responses at most about twice as long as their prompt can echo it (folding
        # removes punctuation and spaces only); the folding runs on those rows alone.
        raw_p, raw_r = text("prompt"), text("response")
        candidate = raw_r.str.len_chars() <= 2 * raw_p.str.len_chars() + 16
        prompt, response = tx.folded(raw_p), tx.folded(raw_r)
        return on_rows(texts.frame, candidate, first_reason([
            ((response == prompt) & (response != ""), "output_equals_input"),
            ((response.str.len_chars() >= self.params.min_repeat_chars)
             & prompt.str.contains(response, literal=True), "response_repeats_prompt"),
        ]))


HTML_TAG = (r"(?i)</?(?:p|div|span|br|hr|a|b|i|u|em|strong|font|center|li|ul|ol|table|tr|td|th"
            r"|tbody|thead|h[1-6]|img|html|body|head|script|style|iframe|meta|link|nav|footer"
            r"|header|section|article|label|input|form|button|sup|sub)\b[^<>]{0,200}?/?>")
HTML_ENTITY = r"&(?:nbsp|amp|lt|gt|quot|apos|mdash|ndash|hellip|rsquo|lsquo|rdquo|ldquo|#\d{2,5}|#x[0-9a-fA-F]{2,4});"


class MarkupParams(Strict):
    max_tags: int = Field(2, ge=0, description="Most HTML tags/entities allowed in a response outside code blocks.")
    exempt_prompt: str = Field(r"(?i)\b(?:html|xml|svg|markup|tags?|web ?page|website|jsx|css|react|vue|angular|php|dom|xpath|scrap(?:e|ing)|email template)\b|网页|标签", description="Regex: prompts matching it ask for markup, so their responses are not checked.")


@register
class MarkupFilter(ExprFilter):
    """HTML residue (tags, entities) left in responses by scraping (``markup_residue``)."""

    name = "markup"
    Params = MarkupParams
    reason_codes = ("markup_residue",)

    def expr(self, texts: Texts) -> pl.Expr:
        prose = text("response").str.replace_all(r"(?s)```.*?(?:```|$)|`[^`\n]*`", "")
        count = prose.str.count_matches(HTML_TAG) + prose.str.count_matches(HTML_ENTITY)
        asks = text("prompt").str.contains(self.params.exempt_prompt)
        return first_reason([((count > self.params.max_tags) & ~asks, "markup_residue")])


# UTF-8 read as cp1252/latin-1: "Ã©" for "é", "â€™" for "’", "Â " for a no-break space.
MOJIBAKE = (r"[ÃÂ][\x{80}-\x{BF}]|â€[\x{80}-\x{BF}™œ\x{9d}\x{201a}-\x{201e}\x{2018}-\x{2019}\x{2020}-\x{2022}\x{2026}\x{2030}\x{2039}\x{203a}\x{20ac}\x{152}\x{153}\x{160}\x{161}\x{178}\x{17d}\x{17e}\x{192}\x{2c6}\x{2dc}]|\x{FFFD}")
# C0 controls except tab/newline/CR, DEL and the C1 block; zero-width joiners, RTL marks
# and variation selectors (emoji, Arabic, Hebrew) are not controls and pass.
CONTROL = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F\x{80}-\x{9F}]"


class EncodingParams(Strict):
    max_mojibake: int = Field(0, ge=0, description="Most mojibake sequences (or U+FFFD) allowed per record.")
    max_control: int = Field(0, ge=0, description="Most control characters allowed per record.")


@register
class EncodingFilter(ExprFilter):
    """Mojibake (``mojibake``) and control characters (``control_chars``) in any turn."""

    name = "encoding"
    Params = EncodingParams
    reason_codes = ("mojibake", "control_chars")

    def expr(self, texts: Texts) -> pl.Expr:
        def over(pattern: str, limit: int) -> pl.Expr:
            sides = [text("prompt"), text("response")]
            if limit == 0:  # "any at all": contains() stops at the first hit
                return sides[0].str.contains(pattern) | sides[1].str.contains(pattern)
            return sides[0].str.count_matches(pattern) + sides[1].str.count_matches(pattern) > limit

        return first_reason([(over(CONTROL, self.params.max_control), "control_chars"),
                             (over(MOJIBAKE, self.params.max_mojibake), "mojibake")])


# Symbols and punctuation that are not sentence or structure marks: quotes, brackets,
# commas, full stops, colons (Latin and CJK) are how JSON, lists and prose look, so they
# do not count; emoji do not count either.
SYMBOL = (r"[[\p{S}\p{Pc}\p{Pd}\p{Po}]&&[^\p{Extended_Pictographic}.,:;!?'\"、。，：；！？·…‧・-]]")


class SymbolParams(Strict):
    max_ratio: float = Field(0.3, gt=0, le=1, description="Most symbol characters (see SYMBOL: not letters, digits, emoji, quotes, brackets or sentence punctuation) as a share of all characters.")
    min_chars: int = Field(20, ge=1, description="Texts shorter than this are not checked (a short '2+2=4' is fine).")


@register
class SymbolRatioFilter(ExprFilter):
    """Too many symbols/punctuation for a turn (``too_many_symbols:prompt|response``);
    emoji, joiners and variation selectors do not count as symbols."""

    name = "symbol_ratio"
    Params = SymbolParams
    reason_codes = ("too_many_symbols:prompt", "too_many_symbols:response")

    def expr(self, texts: Texts) -> pl.Expr:
        pairs = []
        for side in ("prompt", "response"):
            t = text(side)
            chars = t.str.len_chars()
            symbols = t.str.count_matches(SYMBOL)
            ratio = symbols / pl.max_horizontal(chars, 1)
            pairs.append(((chars >= self.params.min_chars) & (ratio > self.params.max_ratio),
                          f"too_many_symbols:{side}"))
        return first_reason(pairs)
