"""The one text layer: what a word, a script without spaces, whitespace and a normalised
text are, for the filters, dedup, decontamination, the audit and generation alike.

Definitions (patterns are Rust regex syntax, as polars runs them):

- **word** (``WORD_PATTERN``): one character of a script written without spaces between
  words (Han, kana, Thai, Lao, Khmer, Myanmar), so Chinese counts per character; or a
  run of letters, digits, marks and underscores, where an apostrophe between two such
  runs stays inside the word ("don't" is one word); or one emoji. Punctuation and
  symbols are not words. Hangul is written with spaces: a Korean word is a run.
- **whitespace** (``PY_WHITESPACE``): what Python's ``str.strip`` removes; "blank" text
  has nothing else. The converters reject blank turns with this rule, so polars checks
  use the same set (Rust's own ``\\s`` differs on a few characters).
- **normalised** text (``normalise``): NFKC, then lower case: full-width letters and
  ligatures fold, so dedup and decontamination do not miss a copy over them.
- **folded** text (``folded``): lower case with every run of non-letters/digits turned
  into one space, for comparing two texts while ignoring punctuation and spacing.

>>> import polars as pl
>>> pl.select(pl.lit("Don't panic: 你好 🙂").str.count_matches(WORD_PATTERN)).item()
5
"""

from __future__ import annotations

import polars as pl

# Scripts written without spaces between words: each character is one word.
NO_SPACE_SCRIPTS = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
NO_SPACE_CHAR = f"[{NO_SPACE_SCRIPTS}]"
_LETTERS = rf"[\p{{L}}\p{{N}}\p{{M}}_&&[^{NO_SPACE_SCRIPTS}]]"
# A word of a spaced script: letters/digits/marks, apostrophes allowed inside.
SPACED_WORD = rf"{_LETTERS}+(?:['’]{_LETTERS}+)*"
EMOJI = r"\p{Extended_Pictographic}"
WORD_PATTERN = rf"{NO_SPACE_CHAR}|{SPACED_WORD}|{EMOJI}"
# The tokens dedup and decontamination hash (of normalised text): runs of letters,
# digits, marks and underscores (an apostrophe splits them) or one no-space-script
# character; no emoji, no punctuation. In ASCII text: runs of [a-z0-9_].
TOKEN_RUN = rf"{_LETTERS}+"
TOKEN_PATTERN = rf"{NO_SPACE_CHAR}|{TOKEN_RUN}"
# ASCII characters that separate tokens (everything but letters, digits and "_").
ASCII_SEPARATORS = [chr(c) for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")]

# Every character Python's str.isspace() accepts lies in the BMP (Unicode 15).
PY_WHITESPACE = "".join(chr(c) for c in range(0x10000) if chr(c).isspace())
# A character that is not whitespace for Python (used as "has text" in polars).
NON_SPACE = "[^" + "".join(f"\\x{{{ord(c):x}}}" for c in PY_WHITESPACE) + "]"


def has_text(expr: pl.Expr) -> pl.Expr:
    """True where ``expr`` has a character Python's ``strip`` would keep (null stays null)."""
    return expr.str.contains(NON_SPACE)


def strip(expr: pl.Expr) -> pl.Expr:
    """``str.strip()`` exactly as Python does it, as a polars expression."""
    return expr.str.strip_chars(PY_WHITESPACE)


def word_count(expr: pl.Expr) -> pl.Expr:
    """Words in each text (see the module docstring)."""
    return expr.str.count_matches(WORD_PATTERN)


def has_word(expr: pl.Expr) -> pl.Expr:
    """True where a text has at least one word (faster than counting)."""
    return expr.str.contains(WORD_PATTERN)


def has_no_space_script(text: str) -> bool:
    """True when ``text`` has a character of a script written without spaces."""
    return bool(pl.select(pl.lit(text).str.contains(NO_SPACE_CHAR)).item())


def python_word_count(text: str) -> int:
    """``word_count`` for one Python string (for code that works on single texts)."""
    return int(pl.select(pl.lit(text).str.count_matches(WORD_PATTERN)).item())


# Characters NFKC leaves as they are, one by one and in any sequence of them: ASCII,
# most Latin, Greek and Cyrillic letters, common punctuation, CJK ideographs, kana and
# Hangul syllables (no combining marks, no compatibility forms). tests/test_text.py
# checks every one with unicodedata.
NFKC_STABLE = (
    r"\x{0}-\x{7f}\x{80}-\x{9f}\x{a1}-\x{a7}\x{a9}\x{ab}-\x{ae}\x{b0}-\x{b1}\x{b6}-\x{b7}\x{bb}"
    r"\x{bf}-\x{131}\x{134}-\x{13e}\x{141}-\x{148}\x{14a}-\x{17e}\x{180}-\x{1c3}\x{1cd}-\x{1f0}"
    r"\x{1f4}-\x{24f}\x{370}-\x{373}\x{375}-\x{377}\x{37b}-\x{37d}\x{37f}\x{386}\x{388}-\x{38a}"
    r"\x{38c}\x{38e}-\x{3a1}\x{3a3}-\x{3cf}\x{3d7}-\x{3ef}\x{3f3}\x{3f6}-\x{3f8}\x{3fa}-\x{482}"
    r"\x{48a}-\x{4ff}\x{200b}-\x{2010}\x{2012}-\x{2016}\x{2018}-\x{2023}\x{2027}-\x{202e}"
    r"\x{2030}-\x{2032}\x{2035}\x{2038}-\x{203b}\x{203d}\x{203f}-\x{2046}\x{204a}-\x{2056}"
    r"\x{2058}-\x{205e}\x{2060}-\x{2064}\x{2066}-\x{206f}\x{3001}-\x{3029}\x{3030}-\x{3035}"
    r"\x{3037}\x{303b}-\x{303f}\x{3041}-\x{3096}\x{309d}-\x{309e}\x{30a0}-\x{30fe}\x{3400}-\x{4dbf}"
    r"\x{4e00}-\x{9fff}\x{ac00}-\x{d7a3}"
)


def normalise(texts: pl.Series) -> pl.Series:
    """NFKC + lower case. NFKC is the slow part, so only rows with a character NFKC
    might change (outside ``NFKC_STABLE``) pay for it."""
    texts = texts.fill_null("")
    changes = texts.str.contains(f"[^{NFKC_STABLE}]")
    if changes.all():
        texts = texts.str.normalize("NFKC")
    elif changes.any():
        texts = texts.scatter(changes.arg_true(), texts.filter(changes).str.normalize("NFKC"))
    return texts.str.to_lowercase()


def folded(expr: pl.Expr) -> pl.Expr:
    """Lower case, every run of non-letters/digits one space, ends stripped."""
    return expr.str.to_lowercase().str.replace_all(r"[^\p{L}\p{N}\p{M}]+", " ").str.strip_chars()


def tokens(texts: pl.Series, unit: str = "word") -> pl.Series:
    """A List[String] of the tokens of each normalised text: words (``TOKEN_PATTERN``)
    or, with ``unit="char"``, letters and digits one by one (spacing and punctuation
    dropped)."""
    norm = normalise(texts)
    if unit == "char":
        return norm.str.replace_all(r"[^\p{L}\p{N}\p{M}]+", "").str.split("").list.eval(
            pl.element().filter(pl.element() != ""))
    # Rows without a no-space-script character take the simpler pattern (the same tokens,
    # about 30% faster); only the others need the per-character alternative.
    cjk = norm.str.contains(NO_SPACE_CHAR)
    if not cjk.any():
        return norm.str.extract_all(TOKEN_RUN).fill_null([])
    if cjk.all():
        return norm.str.extract_all(TOKEN_PATTERN).fill_null([])
    other, wide = (~cjk).arg_true(), cjk.arg_true()
    lists = pl.concat([norm.gather(other).str.extract_all(TOKEN_RUN),
                       norm.gather(wide).str.extract_all(TOKEN_PATTERN)]).fill_null([])
    return lists.gather(pl.concat([other, wide]).arg_sort())


def is_ascii(texts: pl.Series) -> pl.Series:
    """True for texts of ASCII characters only (null: True)."""
    return ~texts.str.contains(r"[^\x00-\x7F]").fill_null(False)


def ascii_token_lists(texts: pl.Series) -> pl.Series:
    """``tokens`` of ASCII texts, without a regex: lower case, separators to spaces, a
    literal split (several times faster; empty strings are left in the lists)."""
    spaced = texts.fill_null("").str.to_lowercase().str.replace_many(
        ASCII_SEPARATORS, [" "] * len(ASCII_SEPARATORS))
    return spaced.str.split(" ")


def mostly_no_space_script(texts: pl.Series, share: float = 0.3) -> pl.Series:
    """True for texts where over ``share`` of the characters are of a no-space script."""
    texts = texts.fill_null("")
    return texts.str.count_matches(NO_SPACE_CHAR) > texts.str.len_chars() * share
