"""The text layer: one definition of words, whitespace and normalisation."""

from __future__ import annotations

import re
import unicodedata

import polars as pl

from sftdata import text as tx


def test_nfkc_stable_characters_are_stable():
    ranges = re.findall(r"\\x\{([0-9a-f]+)\}(?:-\\x\{([0-9a-f]+)\})?", tx.NFKC_STABLE)
    for lo, hi in ranges:
        for code in range(int(lo, 16), int(hi or lo, 16) + 1):
            ch = chr(code)
            assert unicodedata.normalize("NFKC", ch) == ch and not unicodedata.combining(ch), hex(code)


def test_normalise_equals_python_nfkc_lower():
    samples = ["Ｆｕｌｌ ｗｉｄｔｈ", "ﬁne ligature", "café naïve", "e\u0301 combining", "数据 模型",
               "ｶﾀｶﾅ halfwidth", "x² and ½", "Ⅻ roman", "plain ascii", "Straße ΣΑΣ", "", "…"]
    got = tx.normalise(pl.Series(samples)).to_list()
    assert got == [unicodedata.normalize("NFKC", s).lower() for s in samples]


def test_words_agree_across_scripts():
    counts = pl.select(tx.word_count(pl.lit(pl.Series([
        "Don't panic", "안녕하세요 세계", "你好世界", "🎉 party 🎉", "well-known, state-of-the-art", "a—b … c"]))
    )).to_series().to_list()
    assert counts == [2, 2, 4, 3, 6, 3]


def test_strip_and_has_text_follow_python():
    samples = [" x ", "\x1c\x1dy\x1e", "\u3000z\u00a0", "\u200b", "\x85"]
    stripped = pl.select(tx.strip(pl.lit(pl.Series(samples)))).to_series().to_list()
    assert stripped == [s.strip() for s in samples]
    has = pl.select(tx.has_text(pl.lit(pl.Series(samples)))).to_series().to_list()
    assert has == [bool(s.strip()) for s in samples]
