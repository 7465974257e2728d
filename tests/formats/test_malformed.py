"""Malformed input: each bad record gets its reason code and location, and the good
records around it still come out."""

from __future__ import annotations

import json

from sftdata.convert import read_canonical

GOOD = {"instruction": "Say hi", "input": "", "output": "hi"}


def write_lines(path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def reasons_by_location(result) -> dict:
    return {r["location"]: r["reason"] for r in result.rejects}


def test_alpaca_jsonl_with_broken_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    write_lines(path, [
        json.dumps(GOOD).encode(),                                  # 1
        b'{"instruction": "a", "outp',                               # 2 truncated
        '{"instruction": "caf\u00e9", "output": "x"}'.encode("latin-1"),  # 3 bad UTF-8
        json.dumps({"instruction": "a", "output": 5}).encode(),     # 4 non-string
        json.dumps({"instruction": "a"}).encode(),                  # 5 missing output
        json.dumps({"instruction": "a", "output": "  "}).encode(),  # 6 empty output
        b"[1, 2]",                                                  # 7 not an object
        json.dumps(GOOD | {"output": "hello"}).encode(),            # 8
    ])
    result = read_canonical(path)
    assert reasons_by_location(result) == {
        2: "bad_json", 3: "bad_utf8", 4: "not_a_string:output", 5: "missing_field:output",
        6: "empty_content:output", 7: "not_an_object",
    }
    assert result.frame.height == 2
    assert [m[-1]["content"] for m in result.frame["messages"].to_list()] == ["hi", "hello"]
    assert result.rejects[0]["record"] == '{"instruction": "a", "outp'  # the raw line is kept


def test_sharegpt_bad_conversations(tmp_path):
    ok = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    rows = [
        ok,
        {"conversations": [{"from": "human", "value": "q"}, {"from": "bot", "value": "a"}]},
        {"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}]},
        {"conversations": []},
        {"conversations": [{"from": "human", "value": "q"}]},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": "{oops"}]},
        ok,
    ]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    result = read_canonical(path)
    assert reasons_by_location(result) == {  # JSON arrays: 0-based index
        1: "unknown_role:bot", 2: "bad_role_order", 3: "empty_conversation",
        4: "ends_with_user", 5: "bad_tool_call",
    }
    assert result.frame.height == 2


def test_openai_bad_messages(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"},
                      {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]},
                      {"role": "assistant", "content": "a"}]},
        {"messages": "hello"},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                      {"role": "system", "content": "late"}]},
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = read_canonical(path)
    assert reasons_by_location(result) == {
        2: "bad_role_order", 3: "unsupported_content:image_url", 4: "not_a_list:messages",
        5: "bad_role_order",
    }


def test_json_lines_in_a_dot_json_file_are_read_line_by_line(tmp_path):
    path = tmp_path / "really_lines.json"
    path.write_text(json.dumps(GOOD) + "\n" + '{"instruction": "x", "out\n', encoding="utf-8")
    result = read_canonical(path)
    assert result.frame.height == 1
    assert reasons_by_location(result) == {2: "bad_json"}


def test_lone_surrogates_are_rejected_not_crashed_on(tmp_path):
    lines = ['{"instruction": "\\ud800 x", "output": "b"}',          # lone surrogate
             '{"instruction": "emoji \\ud83d\\ude00", "output": "b"}',  # a valid escaped pair
             json.dumps(GOOD)]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = read_canonical(path)
    assert reasons_by_location(result) == {1: "lone_surrogate"}
    assert result.frame["messages"].to_list()[0][0]["content"] == "emoji \U0001F600"
    array = tmp_path / "s.json"
    array.write_text("[" + ",".join(lines) + "]", encoding="utf-8")
    assert reasons_by_location(read_canonical(array)) == {0: "lone_surrogate"}


def test_a_user_field_named_like_the_hints_key_is_a_reject_not_a_loss(tmp_path):
    """sftdata keeps its own format hints under that key: a user field of that name
    could not be told from them, so it is rejected with the reason (it used to vanish)."""
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(GOOD | {"_sftdata": "d"}) + "\n" + json.dumps(GOOD) + "\n", encoding="utf-8")
    result = read_canonical(path)
    assert reasons_by_location(result) == {1: "reserved_field:_sftdata"}
    assert result.frame.height == 1
