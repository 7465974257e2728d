"""Loader configs for LLaMA-Factory, axolotl and TRL, checked the way each tool loads data:
``datasets.load_dataset`` plus LLaMA-Factory's column and tag rules (a re-statement of
its 0.9.5 converters, below), TRL's own SFTTrainer data preparation, and axolotl's
chat_template field mapping; every real-world file, converted to each format.

The real LLaMA-Factory run is tests/emit/test_llamafactory_real.py (integration)."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest
import yaml

from sftdata import emit
from sftdata.convert import convert_file, read_canonical
from sftdata.errors import RecordError, UserError
from sftdata.records import records_from_frame

datasets = pytest.importorskip("datasets")
FORMATS = ("alpaca", "sharegpt", "openai")


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> list[tuple[str, str, Path]]:
    """(source name, format, output file) for every real-world file in each format."""
    from tests.conftest import REALWORLD

    if not REALWORLD.is_dir():
        pytest.skip(f"real-world data not found at {REALWORLD}")
    out = tmp_path_factory.mktemp("converted")
    files = []
    for source in sorted(REALWORLD.glob("*.json*")):
        for fmt in FORMATS:
            target = out / f"{source.stem}.{fmt}.jsonl"
            convert_file(source, target, fmt)
            files.append((source.stem, fmt, target))
    return files


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _shape(path: Path, fmt: str) -> emit.DataShape:
    return emit.shape_of(_rows(path), fmt)


# --- LLaMA-Factory 0.9.5's rules for reading one example (data/parser.py, converter.py) ---

def lf_attr(entry: dict) -> dict:
    """DatasetAttr: with "columns" present, every column it does not name becomes None."""
    columns = entry.get("columns")
    attr = {"formatting": entry.get("formatting", "alpaca"), "prompt": "instruction", "query": "input",
            "response": "output", "history": None, "messages": "conversations", "system": None, "tools": None}
    if columns is not None:
        for key in ("prompt", "query", "response", "history", "messages", "system", "tools"):
            attr[key] = columns.get(key)
    return {**attr, **emit.SHAREGPT_TAGS, **(entry.get("tags") or {})}


def lf_convert(example: dict, entry: dict) -> tuple[str, list[tuple[str, str]]]:
    """(system, [(role, content)]) as LLaMA-Factory builds them; KeyError for a named
    column the data set lacks, as LLaMA-Factory raises."""
    a = lf_attr(entry)
    if a["formatting"] == "alpaca":
        turns = []
        if a["history"] and isinstance(example[a["history"]], list):
            for old_prompt, old_response in example[a["history"]]:
                turns += [("user", old_prompt), ("assistant", old_response)]
        query = [example[k] for k in (a["prompt"], a["query"]) if k and example[k]]
        turns += [("user", "\n".join(query)), ("assistant", example[a["response"]])]
        return (example[a["system"]] if a["system"] else "") or "", turns
    roles = {a["user_tag"]: "user", a["assistant_tag"]: "assistant", a["observation_tag"]: "observation",
             a["function_tag"]: "function", a["system_tag"]: "system"}
    messages = example[a["messages"]]
    system = example[a["system"]] if a["system"] else ""
    if messages and messages[0][a["role_tag"]] == a["system_tag"]:
        system, messages = messages[0][a["content_tag"]], messages[1:]
    turns = []
    for m in messages:
        role, content = m[a["role_tag"]], m[a["content_tag"]]
        if a["formatting"] == "openai" and m.get("tool_calls"):
            role, content = a["function_tag"], json.dumps([c["function"] for c in m["tool_calls"]], ensure_ascii=False)
        turns.append((roles[role], content))
    if a["formatting"] == "openai":
        tools = example.get(a["tools"]) if a["tools"] else ""
        system = (system or "") + ("" if tools else "\ndetailed thinking off") if system else \
            ("" if tools else "detailed thinking off")
    odd, even = ("user", "observation"), ("assistant", "function")
    assert len(turns) % 2 == 0 and all(r in (odd, even)[i % 2] for i, (r, _) in enumerate(turns)), turns
    return system or "", turns


def _expected(record: dict) -> tuple[str, list[tuple[str, str]]]:
    messages = record["messages"]
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    roles = {"user": "user", "assistant": "assistant", "tool": "observation"}
    turns = [(roles[m["role"]] if not m.get("tool_calls") else "function", m["content"])
             for m in messages if m["role"] != "system"]
    return system, turns


def test_docstring_examples():
    result = doctest.testmod(emit)
    assert result.attempted > 0 and result.failed == 0


def test_every_real_world_output_loads_with_its_entry(converted):
    """load_dataset + LLaMA-Factory's rules give back each record's own conversation."""
    checked = 0
    for source, fmt, path in converted:
        shape = _shape(path, fmt)
        entry = emit.llamafactory_entry(path.name, shape)
        loaded = datasets.load_dataset("json", data_files=str(path), split="train")
        records = records_from_frame(read_canonical(path).frame)
        assert len(loaded) == len(records) == shape.records
        for example, record in zip(loaded, records):
            system, turns = lf_convert(example, entry)
            want_system, want_turns = _expected(record)
            assert [r for r, _ in turns] == [r for r, _ in want_turns], (source, fmt)
            # Text turns arrive as they are; tool calls arrive as JSON naming the same functions.
            for (role, content), (_, want), message in zip(turns, want_turns, record["messages"][bool(want_system):]):
                if role == "function":
                    calls = json.loads(content)
                    names = [c["name"] for c in (calls if isinstance(calls, list) else [calls])]
                    assert names == [c["function"]["name"] for c in message["tool_calls"]]
                else:
                    assert content == want, (source, fmt)
            if entry["formatting"] != "openai":
                assert system == want_system, (source, fmt)
        checked += 1
    assert checked == 18


DOCUMENTED = {  # the entries LLaMA-Factory's data/README.md shows, every optional column named
    "alpaca": {"formatting": "alpaca", "columns": {"prompt": "instruction", "query": "input", "response": "output",
                                                   "system": "system", "history": "history"}},
    "sharegpt": {"formatting": "sharegpt", "columns": {"messages": "conversations", "system": "system",
                                                       "tools": "tools"}},
    "openai": {"formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": dict(emit.OPENAI_TAGS)},
    "openai+tools": {"formatting": "openai", "columns": {"messages": "messages", "tools": "tools"},
                     "tags": dict(emit.OPENAI_TAGS)},
}


def test_documented_full_entries_load_every_output(converted):
    """Finding 1: every column the format defines is written (empty where absent), so the
    entries LLaMA-Factory documents, which name every column, load every output."""
    for source, fmt, path in converted:
        tools = fmt == "openai" and _shape(path, fmt).tool_calls
        entry = {"file_name": path.name, **DOCUMENTED[fmt + ("+tools" if tools else "")]}
        loaded = datasets.load_dataset("json", data_files=str(path), split="train")
        records = records_from_frame(read_canonical(path).frame)
        for example, record in zip(loaded, records):
            system, turns = lf_convert(example, entry)  # a KeyError here is the old failure
            want_system, want_turns = _expected(record)
            assert [r for r, _ in turns] == [r for r, _ in want_turns], (source, fmt)
            assert tools or system == want_system, (source, fmt)  # openai: LLaMA-Factory adds one


def test_every_column_is_written_even_when_no_row_has_it(converted):
    _, _, alpaca = next(c for c in converted if c[:2] == ("alpaca_en_demo", "alpaca"))
    _, _, sharegpt = next(c for c in converted if c[:2] == ("alpaca_en_demo", "sharegpt"))
    assert _rows(alpaca)[0]["system"] == "" and _rows(alpaca)[0]["history"] == []
    assert _rows(sharegpt)[0]["system"] == "" and _rows(sharegpt)[0]["tools"] == ""


def test_openai_entries_avoid_the_injected_system_prompt():
    plain = emit.DataShape("openai", frozenset({"messages"}))
    tools = emit.DataShape("openai", frozenset({"messages", "tools"}), tool_calls=True)
    assert emit.llamafactory_entry("a.jsonl", plain)["formatting"] == "sharegpt"
    assert emit.llamafactory_entry("a.jsonl", tools)["formatting"] == "openai"
    assert "detailed thinking off" in emit.llamafactory_notes(tools)[0]


def test_merge_keeps_other_entries_and_refuses_to_clobber(tmp_path):
    info_path = tmp_path / "dataset_info.json"
    info_path.write_text(json.dumps({"theirs": {"file_name": "x.json"}, "mine": {"file_name": "old.json"}}))
    entry = {"file_name": "d.jsonl", "formatting": "alpaca"}
    with pytest.raises(UserError, match="already has a different entry 'mine'"):
        emit.write_dataset_info(info_path, "mine", entry)
    merged = emit.write_dataset_info(info_path, "mine", entry, replace=True)
    assert list(merged) == ["theirs", "mine"] and merged["theirs"] == {"file_name": "x.json"}
    assert json.loads(info_path.read_text()) == merged
    assert emit.write_dataset_info(info_path, "mine", entry) == merged  # same entry again: fine


# --- TRL ------------------------------------------------------------------------------------

ALPACA_RICH = [  # what sftdata's writer never emits but users' Alpaca files hold
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5", "system": "Be brief."},
    {"instruction": "And now?", "input": "", "output": "7", "history": [["Add 3 and 4.", "7"]]},
]


@pytest.mark.parametrize("fmt", [*FORMATS, "alpaca-rich"])
def test_trl_snippet_prepares_the_conversations_sftdata_holds(fmt, converted, tiny_model_dir, tmp_path, monkeypatch):
    """The snippet, run as written (MODEL pointed at a local model), gives TRL's
    SFTTrainer data whose tokens are the chat template over sftdata's own messages."""
    pytest.importorskip("trl")
    from transformers import AutoTokenizer

    if fmt == "alpaca-rich":
        fmt, path = "alpaca", tmp_path / "rich.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in ALPACA_RICH))
    else:
        _, _, full = next(c for c in converted if c[:2] == ("alpaca_en_demo", fmt))
        path = tmp_path / full.name
        path.write_text("".join(full.read_text().splitlines(keepends=True)[:8]))  # a few records: fast
    code = emit.trl_snippet(str(path), _shape(path, fmt))
    code = code.replace('MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"', f"MODEL = {str(tiny_model_dir)!r}")
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "snippet"}
    exec(compile(code, "trl_snippet", "exec"), scope)  # noqa: S102 - what the user will run
    prepared = scope["trainer"].train_dataset
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    records = records_from_frame(read_canonical(path).frame)
    assert len(prepared) == len(records)
    for row, record in zip(prepared, records):
        messages = [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
        want = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
        assert row["input_ids"][: len(want)] == want


def test_trl_prepares_prompt_completion_outputs_as_written(converted, tiny_model_dir, tmp_path, monkeypatch):
    """Finding 5: the prompt_completion output loads in TRL's SFTTrainer as is, and only
    the completion is trained (TRL's completion mask over the same chat-template tokens)."""
    pytest.importorskip("trl")
    from transformers import AutoTokenizer

    source = next(c for c in converted if c[:2] == ("glaive_toolcall_en_demo", "sharegpt"))[2]
    path = tmp_path / "glaive.pc.jsonl"
    convert_file(source, path, "prompt_completion")
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:6]))
    code = emit.trl_snippet(str(path), _shape(path, "prompt_completion"))
    assert "to_messages" not in code and "remove_columns" not in code
    code = code.replace('MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"', f"MODEL = {str(tiny_model_dir)!r}")
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "snippet"}
    exec(compile(code, "trl_snippet", "exec"), scope)  # noqa: S102 - what the user will run
    prepared = scope["trainer"].train_dataset
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = _rows(path)
    assert len(prepared) == len(rows)
    for row, raw in zip(prepared, rows):
        prompt = tokenizer.apply_chat_template(raw["prompt"], tools=raw.get("tools"), tokenize=True,
                                               return_dict=False)
        assert row["input_ids"][: len(prompt)] == prompt
        trained = [label != -100 for label in row["labels"]]  # TRL folds its completion mask in
        assert not any(trained[: len(prompt)]) and any(trained[len(prompt):])


def test_trl_snippet_for_tool_calls_converts_first():
    shape = emit.DataShape("sharegpt", frozenset({"conversations", "tools"}), tool_calls=True)
    code = emit.trl_snippet("/d/g.jsonl", shape)
    assert "sftdata convert /d/g.jsonl -o /d/g.openai.jsonl --to openai" in code
    assert "data_files='/d/g.openai.jsonl'" in code


# --- axolotl --------------------------------------------------------------------------------

def axolotl_messages(example: dict, spec: dict) -> list[dict]:
    """axolotl's chat_template mapping: field_messages, message_property_mappings, roles
    (default roles: human/user -> user, gpt/assistant -> assistant, system, tool)."""
    props = spec.get("message_property_mappings") or {"role": "role", "content": "content"}
    roles = {s: t for t, sources in spec["roles"].items() for s in sources} if spec.get("roles") else \
        {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system", "tool": "tool"}
    out = [{"role": "system", "content": example["system"]}] if example.get("system") else []
    for turn in example[spec.get("field_messages", "messages")]:
        out.append({"role": roles[turn[props["role"]]], "content": turn[props["content"]]})
    return out


@pytest.mark.parametrize("fmt", ["sharegpt", "openai"])
def test_axolotl_chat_template_mapping_reads_the_conversations(fmt, converted):
    for source, this_fmt, path in converted:
        if this_fmt != fmt or source == "glaive_toolcall_en_demo":
            continue
        spec = yaml.safe_load(emit.axolotl_snippet(str(path), _shape(path, fmt)))["datasets"][0]
        assert spec["type"] == "chat_template" and spec["path"] == str(path) and spec["ds_type"] == "json"
        loaded = datasets.load_dataset("json", data_files=str(path), split="train")
        for example, record in zip(loaded, records_from_frame(read_canonical(path).frame)):
            assert axolotl_messages(example, spec) == [{"role": m["role"], "content": m["content"]}
                                                       for m in record["messages"]]


def test_axolotl_alpaca_says_what_it_ignores():
    text = emit.axolotl_snippet("/d/a.jsonl", emit.DataShape("alpaca", frozenset({"instruction", "output", "system"})))
    assert "ignores the system column" in text and yaml.safe_load(text)["datasets"][0]["type"] == "alpaca"


# --- reading LLaMA-Factory mappings -----------------------------------------------------------

def test_openorca_style_columns_map_to_alpaca():
    from sftdata.formats import alpaca

    mapping = emit.mapping_from_entry({"file_name": "orca.jsonl", "columns": {
        "prompt": "question", "response": "response", "system": "system_prompt"}})
    row = mapping.apply({"id": "1", "system_prompt": "Be brief.", "question": "2+2?", "response": "4"})
    assert row == {"id": "1", "system": "Be brief.", "instruction": "2+2?", "output": "4"}
    assert [m["role"] for m in alpaca.to_canonical(row)["messages"]] == ["system", "user", "assistant"]


def test_custom_sharegpt_tags_map_to_sharegpt_roles():
    from sftdata.formats import sharegpt

    mapping = emit.mapping_from_entry({"file_name": "c.json", "formatting": "sharegpt",
                                       "columns": {"messages": "dialog"},
                                       "tags": {"role_tag": "speaker", "content_tag": "text",
                                                "user_tag": "client", "assistant_tag": "agent"}})
    row = mapping.apply({"dialog": [{"speaker": "client", "text": "hi"}, {"speaker": "agent", "text": "hello"}]})
    assert row == {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    assert [m["role"] for m in sharegpt.to_canonical(row)["messages"]] == ["user", "assistant"]


def test_openai_tags_under_sharegpt_formatting_read_as_openai():
    """LLaMA-Factory's own kto_en_demo / OpenAI entries: sharegpt formatting, role/content tags."""
    mapping = emit.mapping_from_entry({"file_name": "k.json", "formatting": "sharegpt",
                                       "columns": {"messages": "messages", "kto_tag": "label"},
                                       "tags": {"role_tag": "role", "content_tag": "content",
                                                "user_tag": "user", "assistant_tag": "assistant"}})
    assert mapping.format == "openai" and mapping.columns == {"messages": "messages"}
    assert mapping.roles["user"] == "user" and mapping.roles["assistant"] == "assistant"


def test_emitted_entries_read_back_to_the_identity_mapping(converted):
    for _, fmt, path in converted[:6]:
        rows = _rows(path)
        mapping = emit.mapping_from_entry(emit.llamafactory_entry(path.name, emit.shape_of(rows, fmt)))
        assert mapping.format == fmt and all(mapping.apply(r) == r for r in rows[:20])


def test_mapping_refusals():
    with pytest.raises(UserError, match="preference"):
        emit.mapping_from_entry({"file_name": "p.json", "ranking": True})
    mapping = emit.mapping_from_entry({"columns": {"prompt": "question", "response": "output"}})
    with pytest.raises(RecordError, match="column_conflict:instruction"):
        mapping.apply({"question": "a", "instruction": "b", "output": "c"})
    with pytest.raises(UserError, match="no entry 'x'"):
        emit.entry_named({"a": {}}, "x")
