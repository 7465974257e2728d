"""The mask bugs found with real chat templates, one test each (issue: exact loss masks).

Each goes through the public ``tokenise`` / ``tokenise_records`` API that scoring also uses."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
from chat_families import FAMILIES, Family  # noqa: E402
from sftdata.trainer.data import prepare_tokenizer, tokenise, tokenise_records, trained_text  # noqa: E402

SYSTEM_CONVO = {"messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue, like the sky."},
    {"role": "user", "content": "Another one?"}, {"role": "assistant", "content": "Green. Also: grass!"}]}
TOOL_CONVO = {"messages": [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call12345"},
    {"role": "assistant", "content": "It is 21 degrees."}],
    "tools": [{"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {}}}]}
REASONING = {"messages": [
    {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<think>two and two</think>4"},
    {"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "<think>three and three</think>6"}]}


@pytest.fixture
def family(smol_tokenizer):
    def make(name: str, **changes):
        f = FAMILIES[name]
        if changes:
            f = Family(**{**f.__dict__, **changes})
        return prepare_tokenizer(f.tokenizer(smol_tokenizer))
    return make


def test_1_qwen3_turn_that_only_calls_tools_is_trained(family):
    tok = family("qwen3")
    example, reason, _ = tokenise(tok, TOOL_CONVO, 1024)
    assert reason is None
    assert trained_text(tok, example) == [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>',
        "<think>\n\n</think>\n\nIt is 21 degrees.<|im_end|>"]


def test_2_mistral_with_a_system_prompt_trains_the_first_token_of_each_answer(family):
    tok = family("mistral-v0.3")
    example, _, _ = tokenise(tok, SYSTEM_CONVO, 1024)
    assert trained_text(tok, example) == [" Blue, like the sky.</s>", " Green. Also: grass!</s>"]


def test_3_earlier_turns_end_with_the_templates_end_of_turn_when_it_is_not_eos(family):
    tok = family("qwen3", eos="<|endoftext|>")  # Qwen base models: EOS is not what ends a turn
    assert tok.eos_token == "<|endoftext|>"
    example, _, _ = tokenise(tok, SYSTEM_CONVO, 1024)
    assert trained_text(tok, example) == ["Blue, like the sky.<|im_end|>",
                                          "<think>\n\n</think>\n\nGreen. Also: grass!<|im_end|>"]


def test_4_reasoning_in_earlier_turns_is_trained_or_counted(family):
    qwen3 = family("qwen3")
    result = tokenise_records(qwen3, [REASONING], 1024)
    texts = sorted(t for e in result.examples for t in trained_text(qwen3, e))
    assert texts == ["<think>\nthree and three\n</think>\n\n6<|im_end|>", "<think>\ntwo and two\n</think>\n\n4<|im_end|>"]
    never = tokenise_records(qwen3, [REASONING], 1024, split_turns="never")
    assert never.warnings == {"reasoning_not_rendered": 1} and len(never.examples) == 1
    deepseek = family("deepseek-r1-distill")  # strips reasoning from every turn: trained as written, counted
    result = tokenise_records(deepseek, [REASONING], 1024)
    assert not result.dropped and result.warnings == {"reasoning_not_rendered": 2}
    assert trained_text(deepseek, result.examples[0]) == ["4<｜end▁of▁sentence｜>", "6<｜end▁of▁sentence｜>"]


def test_5_a_conversation_opening_with_an_answer_does_not_train_the_default_system_prompt(family):
    opens = {"messages": [{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye."},
                          {"role": "assistant", "content": "Bye!"}]}
    for name in ("qwen2.5", "smollm2"):
        tok = family(name)
        example, _, _ = tokenise(tok, opens, 1024)
        assert trained_text(tok, example) == ["Hello!<|im_end|>", "Bye!<|im_end|>"], name


def test_6_turns_that_render_as_nothing_are_counted_not_trained_as_a_bare_end_of_turn(family):
    tok = family("smollm2")  # its template writes only `content`: tool calls vanish
    empty = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""},
                          {"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}
    for record, warning in ((TOOL_CONVO, "tool_calls_not_rendered"), (empty, "empty_turn")):
        example, _, _ = tokenise(tok, record, 1024)
        assert "<|im_end|>" not in [t.strip() for t in trained_text(tok, example)]
        assert tokenise_records(tok, [record], 1024).warnings == {warning: 1}


def test_7_weights_are_honoured_and_weight_mode_trains_no_injected_system_prompt(family):
    tok = family("qwen2.5")  # injects "You are Qwen, ..." when there is no system prompt
    weighted = {"messages": [{"role": "user", "content": "A?", "weight": 1.0},
                             {"role": "assistant", "content": "First.", "weight": 0.0},
                             {"role": "user", "content": "B?"}, {"role": "assistant", "content": "Second."}]}
    example, _, _ = tokenise(tok, weighted, 1024)  # default train_on: assistant
    assert trained_text(tok, example) == ["Second.<|im_end|>"]
    example, _, _ = tokenise(tok, weighted, 1024, "weight")
    assert trained_text(tok, example) == ["A?", "Second.<|im_end|>"]
