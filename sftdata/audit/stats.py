"""The audit statistics of a canonical frame, as one JSON-able dict.

``compute_stats(frame)`` is what ``sftdata audit`` and ``sftdata run`` call; every
section is a plain dict so the same object is written to ``stats.json`` and rendered
into the HTML report. Sections that need a step module which is not installed say
``{"available": false, "reason": ...}`` instead of showing made-up numbers.

Everything per record is computed with polars expressions over the whole frame (see
``sftdata.audit.columns`` for the definitions), so 100k records take seconds.
"""

from __future__ import annotations

import datetime as _dt
import json
import random
import time
from pathlib import Path
from typing import Sequence

import polars as pl

from sftdata.audit import quality
from sftdata.audit.scores import score_stats
from sftdata.audit.columns import char_count, derive, distribution, share, word_count
from sftdata.audit.inputs import InputInfo
from sftdata.audit.verbs import verb_object_stats
from sftdata.errors import UserError
from sftdata.records import records_from_frame

STATS_VERSION = 1
SAMPLE_CHARS = 1500  # each turn of a sample is cut to this many characters
# Above this many records the default filters and language detection run on a random
# subset: they are per-record Python/numpy work that would otherwise dominate the audit.
ESTIMATE_LIMIT = 10_000
# Written into stats.json so the file explains itself.
DEFINITIONS = {
    "instruction": "all user turns of a record, joined by newlines",
    "response": "all assistant turns of a record, joined by newlines",
    "turns": "messages that are not system messages",
    "reasoning": "records with a reasoning_content key on a message (kept in its extra); chars: its length",
    "words": "as the length filter counts them (sftdata.text): runs of letters and digits "
             "(apostrophes inside), each character of a script written without spaces, "
             "and each emoji",
    "empty_input": "Alpaca records whose input field was missing, null or empty",
    "leading_words": "first word of the first user turn after polite openers, and the next "
                     "content word (CJK: first two characters, no object)",
    "duplicates": "exact: default exact_dedup step; near: default near_dedup step on what "
                  "exact dedup keeps; rates are shares of all records",
    "filters": "each default filter run on every record (dry-run); a record may hit several",
    "sample": "when set, the section was computed on a seeded random subset of that size",
    "scores": "numeric meta values written by the score steps (ifd, perplexity, judge, reward, "
              "semantic_dedup) or by the input; histograms run to the 99th percentile",
}


def _token_lengths(texts: pl.Series, tokenizer) -> pl.Series:
    """Token counts of ``texts`` with a Hugging Face tokenizer, in batches."""
    counts: list[int] = []
    values = texts.to_list()
    for start in range(0, len(values), 2048):
        batch = tokenizer(values[start:start + 2048], add_special_tokens=False)["input_ids"]
        counts.extend(len(ids) for ids in batch)
    return pl.Series(counts, dtype=pl.Int64)


def load_tokenizer(path: str):
    """A tokenizer from a local folder (transformers imported only when asked for)."""
    if not Path(path).is_dir():
        raise UserError(f"cannot load a tokenizer from {path}: not a folder (models load from disk only)")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise UserError("--tokenizer needs transformers: pip install 'sftdata[train]'") from None
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a tokenizer from {path}: {str(exc).splitlines()[0]}") from None


def length_stats(derived: pl.DataFrame, tokenizer=None, tokenizer_name: str | None = None) -> dict:
    """Characters and tokens (or words) of instruction and response, overall and as
    medians per source (sources differ most in length, and averages hide it)."""
    lengths = derived.select(
        "source",
        char_count("instruction").alias("instruction_chars"),
        char_count("response").alias("response_chars"),
        *([] if tokenizer else [word_count("instruction").alias("instruction_tokens"),
                                word_count("response").alias("response_tokens")]),
    )
    if tokenizer:
        lengths = lengths.with_columns(
            _token_lengths(derived["instruction"], tokenizer).alias("instruction_tokens"),
            _token_lengths(derived["response"], tokenizer).alias("response_tokens"))
    out: dict = {"token_unit": f"tokens ({tokenizer_name})" if tokenizer else "words"}
    for side in ("instruction", "response"):
        out[side] = {"chars": distribution(lengths[f"{side}_chars"]),
                     "tokens": distribution(lengths[f"{side}_tokens"])}
    columns = [f"{side}_{unit}" for side in ("instruction", "response") for unit in ("chars", "tokens")]
    per_source = (lengths.group_by("source")
                  .agg(pl.len().alias("records"), *[pl.col(c).median() for c in columns])
                  .sort(["records", "source"], descending=[True, False]))
    out["by_source"] = [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in row.items()}
                        for row in per_source.iter_rows(named=True)]
    return out


def source_stats(derived: pl.DataFrame, inputs: Sequence[InputInfo] | None,
                 source_formats: dict[str, str] | None = None) -> dict:
    """Records per source and per format (format known only for files that were read,
    or given in ``source_formats``, e.g. for the sources of a mix)."""
    formats = {i.source: i.format for i in inputs or []} | (source_formats or {})
    counts = derived.group_by("source").len().sort(["len", "source"], descending=[True, False])
    sources = [{"source": s, "format": formats.get(s), "records": n} for s, n in counts.iter_rows()]
    by_format: dict[str, int] = {}
    for row in sources:
        key = row["format"] or "unknown"
        by_format[key] = by_format.get(key, 0) + row["records"]
    return {"sources": sources, "formats": by_format}


def empty_input_stats(inputs: Sequence[InputInfo] | None) -> dict:
    """Share of Alpaca records whose ``input`` was missing, null or ""; other formats
    have no separate input field, so they are not counted (not applicable)."""
    alpaca = [i for i in inputs or [] if "empty_input" in i.facts and i.records]
    if not alpaca:
        return {"available": False,
                "reason": "no Alpaca records were read (the input field exists only in Alpaca)"}
    total = sum(i.records for i in alpaca)
    empty = sum(i.facts["empty_input"] for i in alpaca)
    return {"available": True, "applicable": total, "empty": empty, "share": share(empty, total),
            "by_source": {i.source: {"records": i.records, "empty": i.facts["empty_input"]} for i in alpaca}}


def message_extra_stats(messages: pl.Series | None) -> dict:
    """Records whose messages carry keys sftdata keeps in ``extra`` (e.g. ``reasoning_content``,
    ``id``), and the most common of those keys."""
    if messages is None or not len(messages):
        return {"records": 0, "names": []}
    extra = messages.list.eval(pl.element().struct.field("extra")).explode().drop_nulls()
    records = int(messages.list.eval(pl.element().struct.field("extra").is_not_null()).list.any().sum())
    sample = extra.head(20_000).to_list()  # enough to name the common keys
    counts: dict[str, int] = {}
    for text in sample:
        for key in json.loads(text):
            counts[key] = counts.get(key, 0) + 1
    return {"records": records, "names": sorted(counts, key=lambda k: -counts[k])[:8]}


def conversation_stats(derived: pl.DataFrame, frame_messages: pl.Series | None = None) -> dict:
    """Turns, system prompts, tool use, reasoning and extra message keys."""
    n = derived.height
    system = derived.filter(pl.col("n_system") > 0)
    top_system = (system.group_by("system").len().sort(["len", "system"], descending=[True, False])
                  .head(5))
    tools = derived.select(
        (pl.col("has_tool_specs")).sum().alias("specs"),
        (pl.col("n_tool_calls") > 0).sum().alias("calls"),
        (pl.col("n_tool") > 0).sum().alias("turns"),
        (pl.col("has_tool_specs") | (pl.col("n_tool_calls") > 0) | (pl.col("n_tool") > 0))
        .sum().alias("any"),
    ).row(0, named=True)
    with_reasoning = derived.filter(pl.col("reasoning_chars") > 0)
    return {
        "reasoning": {"records": with_reasoning.height, "share": share(with_reasoning.height, n),
                      "chars": distribution(with_reasoning["reasoning_chars"])},
        "message_extra": message_extra_stats(frame_messages),
        "turns": distribution(derived["turns"]),
        "user_turns": distribution(derived["n_user"]),
        "multi_turn": {"records": int((derived["n_user"] > 1).sum()),
                       "share": share(int((derived["n_user"] > 1).sum()), n)},
        "system_prompts": {
            "records": system.height, "share": share(system.height, n),
            "distinct": system["system"].n_unique() if system.height else 0,
            "top": [{"text": t, "count": c} for t, c in top_system.iter_rows()],
        },
        "tools": {
            "records_with_tool_specs": int(tools["specs"]),
            "records_with_tool_calls": int(tools["calls"]),
            "records_with_tool_turns": int(tools["turns"]),
            "records": int(tools["any"]),
            "share": share(int(tools["any"]), n),
        },
    }


def samples(frame: pl.DataFrame, count: int, seed: int) -> list[dict]:
    """``count`` records picked at random with ``seed`` (the same seed, the same picks)."""
    if count <= 0 or frame.height == 0:
        return []
    picks = sorted(random.Random(seed).sample(range(frame.height), min(count, frame.height)))
    out = []
    for index, record in zip(picks, records_from_frame(frame[picks])):
        turns = []
        for m in record["messages"]:
            reasoning = (m.get("extra") or {}).get("reasoning_content")
            reasoning = reasoning if isinstance(reasoning, str) else None
            turns.append({"role": m["role"], "content": m["content"][:SAMPLE_CHARS],
                          "cut": len(m["content"]) > SAMPLE_CHARS, "tool_calls": m.get("tool_calls"),
                          "reasoning": reasoning[:SAMPLE_CHARS] if reasoning else None,
                          "reasoning_cut": bool(reasoning) and len(reasoning) > SAMPLE_CHARS})
        out.append({"index": index, "id": record["id"], "source": record["source"],
                    "messages": turns})
    return out


def _subsample(frame: pl.DataFrame, derived: pl.DataFrame, limit: int | None, seed: int):
    """A seeded random subset of at most ``limit`` rows (all rows when ``limit`` is None)."""
    if limit is None or frame.height <= limit:
        return frame, derived, None
    picks = sorted(random.Random(seed).sample(range(frame.height), limit))
    return frame[picks], derived[picks], {"records": limit, "of": frame.height}


def _with_scope(section: dict, scope: dict | None) -> dict:
    return {**section, "sample": scope} if section.get("available") else section


def compute_stats(
    frame: pl.DataFrame,
    *,
    inputs: Sequence[InputInfo] | None = None,
    read_rejects: dict[str, int] | None = None,
    source_formats: dict[str, str] | None = None,
    tokenizer: str | None = None,
    sample_count: int = 5,
    seed: int = 0,
    estimate_limit: int | None = ESTIMATE_LIMIT,
    title: str = "sftdata audit",
) -> dict:
    """Every audit section for ``frame`` (canonical ``FRAME_SCHEMA`` columns).

    ``inputs`` (from ``read_inputs``) adds formats, rows read and the Alpaca empty-input
    share; ``read_rejects`` are read rejects by reason; ``source_formats`` names the format
    of sources that are not files read here (a mix's sources); ``tokenizer`` is a local
    tokenizer folder (lengths in its tokens instead of words); ``sample_count`` random
    records (picked with ``seed``) are shown. The default filters and language detection
    are the slow sections: on frames larger than ``estimate_limit`` they run on a
    seeded random subset of that size and say so (``"sample": {"records", "of"}``);
    ``estimate_limit=None`` runs them on every record. Everything else is exact.
    """
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def timed(name: str, value):
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 3)
        clock = now
        return value

    derived = timed("derive", derive(frame))
    sub_frame, sub_derived, scope = _subsample(frame, derived, estimate_limit, seed)
    tok = load_tokenizer(tokenizer) if tokenizer else None
    n = frame.height
    stats = {
        "version": STATS_VERSION,
        "title": title,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "records": n,
        "definitions": DEFINITIONS,
        "inputs": [i.as_dict() for i in inputs or []],
        "read_rejects": dict(read_rejects or {}),
        **source_stats(derived, inputs, source_formats),
        "conversations": conversation_stats(derived, frame["messages"]),
        "lengths": timed("lengths", length_stats(derived, tok, str(tokenizer) if tokenizer else None)),
        "empty_input": empty_input_stats(inputs),
        "leading_words": timed("leading_words", verb_object_stats(derived["first_user"])),
        "languages": timed("languages", _with_scope(quality.language_stats(sub_derived), scope)),
        "duplicates": timed("duplicates", quality.duplicate_stats(frame)),
        "filters": timed("filters", _with_scope(quality.filter_stats(sub_frame, sub_derived), scope)),
        "refusals": timed("refusals", quality.refusal_stats(frame, derived)),
        "scores": timed("scores", score_stats(frame)),
        "samples": samples(frame, sample_count, seed),
    }
    stats["seconds"] = seconds  # where the audit's own time went, per section
    return stats
