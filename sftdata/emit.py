"""Configs that let other trainers load an sftdata output as written, and the reverse:
reading LLaMA-Factory's column and role mapping.

For a data file in one of sftdata's formats (alpaca, sharegpt, openai), described by a
``DataShape`` (its columns and what its records hold):

- ``llamafactory_entry``: a ``dataset_info.json`` entry (formatting, columns, tags).
  LLaMA-Factory indexes every column an entry names (``example[column]``), so a column no
  row has fails the whole data set with a ``KeyError``: only columns the file really has
  are named. Once ``columns`` is given, LLaMA-Factory sets every column it leaves out to
  None, so ``prompt``/``response`` are always named too.
- ``axolotl_snippet``: a ``datasets:`` YAML block (``type: alpaca`` or ``chat_template``).
- ``trl_snippet``: Python that loads the file into the ``messages`` column TRL's
  ``SFTTrainer`` reads.
- ``merge_dataset_info`` / ``write_dataset_info``: add an entry to a ``dataset_info.json``
  without touching the other entries (the one function here that writes a file).

Reading: ``mapping_from_entry`` turns a LLaMA-Factory entry into a ``ColumnMapping``
(file column -> sftdata field, role value -> sftdata role), and ``ColumnMapping.apply``
renames one row into the layout sftdata's readers take.

Pure functions over plain values; the ``sftdata emit`` command does the reading.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from sftdata.errors import UserError
from sftdata.mapping import SHAREGPT_TAGS

TOOLS = ("llamafactory", "axolotl", "trl")
EMIT_FORMATS = ("alpaca", "sharegpt", "openai", "prompt_completion")
ONLY_TRL = ("prompt_completion",)  # TRL reads it as is; LLaMA-Factory and axolotl do not
# The role values LLaMA-Factory's OpenAI-style tags name, in the key order it documents.
OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
               "assistant_tag": "assistant", "system_tag": "system", "observation_tag": "tool",
               "function_tag": "function_call"}

@dataclass(frozen=True)
class DataShape:
    """What a data file holds, as far as a loader's config depends on it."""

    format: str                        # alpaca | sharegpt | openai
    columns: frozenset[str]            # every top-level key some row has
    tool_calls: bool = False           # openai tool_calls / sharegpt function_call turns
    weights: bool = False              # per-message "weight" keys
    records: int = 0


def shape_of(rows: Iterable[dict], fmt: str) -> DataShape:
    """The ``DataShape`` of rows already known to be in format ``fmt``.

    >>> sorted(shape_of([{"instruction": "a", "input": "", "output": "b"}], "alpaca").columns)
    ['input', 'instruction', 'output']
    """
    if fmt not in EMIT_FORMATS:
        raise UserError(f"cannot emit loader configs for format {fmt!r}; use one of {', '.join(EMIT_FORMATS)}")
    columns: set[str] = set()
    tool_calls = weights = False
    count = 0
    turns_key = {"sharegpt": "conversations", "openai": "messages"}.get(fmt)
    for row in rows:
        count += 1
        columns |= set(row)
        turns = row.get(turns_key) if turns_key else None
        for turn in turns if isinstance(turns, list) else []:
            if not isinstance(turn, dict):
                continue
            tool_calls |= bool(turn.get("tool_calls")) or turn.get("from") == "function_call"
            weights |= turn.get("weight") is not None
    return DataShape(fmt, frozenset(columns), tool_calls, weights, count)


# --- LLaMA-Factory ------------------------------------------------------------------------

def llamafactory_entry(file_name: str, shape: DataShape) -> dict:
    """The ``dataset_info.json`` entry that loads ``file_name`` (relative to that file).

    >>> llamafactory_entry("d.jsonl", DataShape("alpaca", frozenset({"instruction", "input", "output"})))
    {'file_name': 'd.jsonl', 'formatting': 'alpaca', 'columns': {'prompt': 'instruction', 'query': 'input', 'response': 'output'}}
    """
    if shape.format in ONLY_TRL:
        raise UserError(f"LLaMA-Factory does not read {shape.format} files: convert to sharegpt for it")
    has = shape.columns
    entry: dict[str, Any] = {"file_name": file_name}
    if shape.format == "alpaca":
        entry["formatting"] = "alpaca"
        columns = {"prompt": "instruction", "query": "input", "response": "output",
                   "system": "system", "history": "history"}
        entry["columns"] = {k: v for k, v in columns.items() if v in has or k in ("prompt", "response")}
        return entry
    if shape.format == "sharegpt":
        entry["formatting"] = "sharegpt"
        entry["columns"] = {"messages": "conversations",
                            **{k: k for k in ("system", "tools") if k in has}}
        entry["tags"] = dict(SHAREGPT_TAGS)
        return entry
    # OpenAI messages. LLaMA-Factory's "openai" converter is the one that reads
    # tool_calls, but it also adds the system prompt "detailed thinking off" to records
    # without a system prompt or tools; plain conversations load through "sharegpt" with
    # OpenAI tags (LLaMA-Factory's documented way) and arrive unchanged.
    entry["formatting"] = "openai" if shape.tool_calls else "sharegpt"
    entry["columns"] = {"messages": "messages", **({"tools": "tools"} if "tools" in has else {})}
    entry["tags"] = dict(OPENAI_TAGS)
    return entry


def llamafactory_notes(shape: DataShape) -> list[str]:
    """What LLaMA-Factory 0.9.5 will do to this data that a user should know about."""
    notes = []
    if shape.format == "openai" and shape.tool_calls:
        notes.append("LLaMA-Factory's openai converter JSON-encodes the (already JSON) tool-call arguments "
                     "a second time and adds 'detailed thinking off' as the system prompt of records with "
                     "neither a system prompt nor tools; the sharegpt output loads tool calls as they are")
    if shape.weights:
        notes.append("LLaMA-Factory ignores the per-turn `weight` keys (it trains every assistant turn)")
    return notes


def merge_dataset_info(info: dict, name: str, entry: dict, replace: bool = False) -> dict:
    """``info`` with ``entry`` under ``name``; other entries and their order are kept.

    An existing, different entry of that name is an error unless ``replace``.
    """
    if not isinstance(info, dict):
        raise UserError("dataset_info.json must hold a JSON object of data set entries")
    if name in info and info[name] != entry and not replace:
        raise UserError(f"dataset_info.json already has a different entry {name!r}; "
                        "pass --name to add another, or --replace")
    return {**info, name: entry}


def read_dataset_info(path: str | os.PathLike) -> dict:
    """A ``dataset_info.json`` as a dict ({} when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(info, dict):
        raise UserError(f"{path}: must hold a JSON object of data set entries")
    return info


def write_dataset_info(path: str | os.PathLike, name: str, entry: dict, replace: bool = False) -> dict:
    """Merge ``entry`` into the ``dataset_info.json`` at ``path`` (atomically); return the file's content."""
    from sftdata.io import atomic_path

    merged = merge_dataset_info(read_dataset_info(path), name, entry, replace)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return merged


# --- axolotl and TRL ------------------------------------------------------------------------

def axolotl_snippet(path: str, shape: DataShape) -> str:
    """A ``datasets:`` block for an axolotl config, with notes on what axolotl cannot read."""
    if shape.format in ONLY_TRL:
        raise UserError(f"axolotl's chat_template does not read {shape.format} files: convert to openai for it")
    notes: list[str] = []
    spec: dict[str, Any] = {"path": path, "ds_type": "json" if path.endswith((".json", ".jsonl")) else
                            Path(path).suffix.lstrip(".")}
    if shape.format == "alpaca":
        spec["type"] = "alpaca"
        lost = sorted(shape.columns & {"system", "history"})
        if lost:
            notes.append(f"axolotl's alpaca type ignores the {' and '.join(lost)} column(s): convert with "
                         "`sftdata convert IN -o OUT.jsonl --to openai` and use type: chat_template")
    elif shape.format == "openai":
        spec.update(type="chat_template", field_messages="messages",
                    message_property_mappings={"role": "role", "content": "content"})
        if shape.weights:
            spec["message_field_training"] = "weight"  # 0 / 1 per message, read as false / true
    else:
        spec.update(type="chat_template", field_messages="conversations",
                    message_property_mappings={"role": "from", "content": "value"},
                    roles={"user": ["human"], "assistant": ["gpt"], "system": ["system"],
                           "tool": ["observation"]})
        if shape.tool_calls:
            notes.append("function_call turns are not tool calls to axolotl: convert with "
                         "`sftdata convert IN -o OUT.jsonl --to openai` first")
        if "tools" in shape.columns:
            notes.append("the tools column is a JSON string here; axolotl passes it to the chat "
                         "template as is")
    head = ["# axolotl: put this under your config's `datasets:` (written by sftdata emit)"]
    head += [f"# note: {n}" for n in notes]
    return "\n".join(head) + "\n" + yaml.safe_dump({"datasets": [spec]}, sort_keys=False, allow_unicode=True)


_TRL_CONVERT = {
    "alpaca": '''
def to_messages(row):
    """Alpaca -> messages, as sftdata and LLaMA-Factory read it (instruction + "\\\\n" + input)."""
    messages = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    for user, assistant in row.get("history") or []:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    prompt = row["instruction"] + ("\\n" + row["input"] if row.get("input") else "")
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]
    return {"messages": messages}


dataset = dataset.map(to_messages, remove_columns=dataset.column_names)
''',
    "sharegpt": '''
ROLES = {"system": "system", "human": "user", "gpt": "assistant", "observation": "tool"}


def to_messages(row):
    """ShareGPT -> messages (a `system` column becomes the first message)."""
    messages = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    messages += [{"role": ROLES[t["from"]], "content": t["value"]} for t in row["conversations"]]
    return {"messages": messages}


dataset = dataset.map(to_messages, remove_columns=dataset.column_names)
''',
}


def trl_snippet(path: str, shape: DataShape) -> str:
    """Python that loads ``path`` for TRL's ``SFTTrainer`` (set MODEL before running it)."""
    load_path, steps = path, ""
    notes = []
    if shape.format == "sharegpt" and shape.tool_calls:
        load_path = str(Path(path).with_name(Path(path).stem + ".openai.jsonl"))
        notes.append(f"function_call turns: first run  sftdata convert {path} -o {load_path} --to openai")
    elif shape.format in _TRL_CONVERT:
        steps = _TRL_CONVERT[shape.format]
    else:
        keep = sorted(shape.columns - {"messages", "tools", "prompt", "completion"})
        if keep:
            steps = f"\ndataset = dataset.remove_columns({keep!r})\n"
    if shape.weights:
        notes.append("per-message `weight` keys are not read by TRL (assistant turns are trained)")
    kind = "json" if path.endswith((".json", ".jsonl")) else Path(path).suffix.lstrip(".")
    lines = ["# TRL: fine-tune on this data with SFTTrainer (written by sftdata emit)"]
    lines += [f"# note: {n}" for n in notes]
    lines += ["import torch", "from datasets import load_dataset", "from trl import SFTConfig, SFTTrainer", "",
              'MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"  # any causal LM with a chat template', "",
              f'dataset = load_dataset("{kind}", data_files={load_path!r}, split="train")']
    text = "\n".join(lines) + "\n" + steps
    text += ("\ntrainer = SFTTrainer(model=MODEL, train_dataset=dataset,\n"
             '                     args=SFTConfig(output_dir="trl-out", bf16=torch.cuda.is_available()))\n'
             'if __name__ == "__main__":\n    trainer.train()\n')
    return text


# Reading LLaMA-Factory's mapping lives in sftdata.mapping (the readers use it).
from sftdata.mapping import ColumnMapping, entry_named, mapping_from_entry  # noqa: E402,F401
