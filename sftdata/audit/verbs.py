"""The diversity view of Self-Instruct: leading verbs of instructions and their objects.

The Self-Instruct paper parses each instruction and plots the root verb with its direct
object noun. A parser is a heavy dependency for a data audit, so this is a heuristic
that needs none, and the report says so:
- the instruction is the first user turn, lower-cased, with polite openers removed
  ("please", "can you", "could you please", ...);
- the leading word is its first word; for text starting with CJK characters it is the
  first two characters (most Chinese verbs are two characters: 识别, 解释, 生成);
- the object is the next word after it that is not a function word (a, the, me, of...);
  CJK text has no object (word boundaries need a segmenter).
"""

from __future__ import annotations

import polars as pl

OPENERS = r"^(?:(?:please|pls|kindly|hey|hi|ok|okay|now|so)[\s,!.]+|(?:can|could|would|will) you(?: please)?\s+|i (?:want|need|would like) you to\s+|help me(?: to)?\s+)+"
LEADING = r"^[^\p{L}\p{N}]*(\p{Han}{1,2}|[\p{L}\p{N}][\p{L}\p{N}'’\-]*)"
WORD = r"[\p{L}\p{N}][\p{L}\p{N}'’\-]*"
FUNCTION_WORDS = [
    "a", "an", "the", "me", "us", "you", "him", "her", "them", "it", "this", "that", "these",
    "those", "some", "any", "my", "your", "our", "their", "his", "its", "of", "to", "for",
    "in", "on", "at", "by", "with", "from", "about", "and", "or", "is", "are", "be", "i",
    "we", "what", "which", "how", "up", "down", "out", "one", "two", "three", "all", "each",
    "every", "more", "most", "new", "following", "given", "below", "above", "short", "brief",
]
TOP_VERBS = 20
TOP_OBJECTS = 4


def leading_words(first_user: pl.Series) -> pl.DataFrame:
    """Columns ``verb`` and ``object`` (null when absent) for each instruction."""
    text = first_user.str.to_lowercase().str.strip_chars().str.replace(OPENERS, "")
    frame = pl.DataFrame({"text": text})
    verb = pl.col("text").str.extract(LEADING, 1)
    rest = pl.col("text").str.replace(LEADING, "")
    frame = frame.with_columns(verb.alias("verb"), rest.alias("rest"))
    is_cjk = pl.col("verb").str.contains(r"^\p{Han}")
    obj = (pl.col("rest").str.extract_all(WORD).list.head(8)
           .list.eval(pl.element().filter(~pl.element().is_in(FUNCTION_WORDS))).list.first())
    return frame.select(
        "verb", pl.when(is_cjk | pl.col("verb").is_null()).then(None).otherwise(obj).alias("object"))


def verb_object_stats(first_user: pl.Series, top: int = TOP_VERBS,
                      per_verb: int = TOP_OBJECTS) -> dict:
    """The top leading words with their top objects (counts), for the table and sunburst."""
    words = leading_words(first_user)
    with_verb = words.filter(pl.col("verb").is_not_null())
    verbs = with_verb.group_by("verb").len().sort(["len", "verb"], descending=[True, False])
    top_verbs = verbs.head(top)
    pairs = (with_verb.filter(pl.col("verb").is_in(top_verbs["verb"].implode())
                              & pl.col("object").is_not_null())
             .group_by("verb", "object").len()
             .sort(["verb", "len", "object"], descending=[False, True, False]))
    objects: dict[str, list[dict]] = {}
    for verb, obj, count in pairs.iter_rows():
        if len(objects.setdefault(verb, [])) < per_verb:
            objects[verb].append({"word": obj, "count": count})
    return {
        "records": words.height,
        "with_leading_word": with_verb.height,
        "distinct": verbs.height,
        "top": [{"word": verb, "count": count, "objects": objects.get(verb, [])}
                for verb, count in top_verbs.iter_rows()],
    }
