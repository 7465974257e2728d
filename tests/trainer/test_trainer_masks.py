"""Loss masks: decode exactly the trained tokens for the real SmolLM2 tokenizer with its
own template, a Llama-3-style and a Qwen-style template, multi-turn with a system prompt."""

from __future__ import annotations

import copy

import pytest

pytest.importorskip("torch")
from sftdata.trainer.data import (  # noqa: E402
    prepare_tokenizer, tokenise, tokenise_records, trained_text,
)

LLAMA3 = (
    "{{- bos_token }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"
)
QWEN = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or (message.role == 'assistant') %}"
    "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
CONVO = {"messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue, like the sky."},
    {"role": "user", "content": "Another one?"},
    {"role": "assistant", "content": "Green. Also: grass!"},
]}
ANSWERS = ["Blue, like the sky.", "Green. Also: grass!"]


def _tokenizer(base, template: str | None):
    tok = copy.deepcopy(base)
    if template == "llama3":
        tok.add_special_tokens({"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
        tok.chat_template, eot = LLAMA3, "<|eot_id|>"
    elif template == "qwen":
        tok.chat_template, eot = QWEN, "<|im_end|>"
    else:
        eot = tok.eos_token
    return prepare_tokenizer(tok), eot


@pytest.mark.parametrize("template", ["smollm2", "llama3", "qwen"])
def test_trained_tokens_are_the_assistant_answers_with_end_of_turn(smol_tokenizer, template):
    tok, eot = _tokenizer(smol_tokenizer, template)
    example, reason, _ = tokenise(tok, CONVO, 512, "assistant")
    assert reason is None
    assert trained_text(tok, example) == [a + eot for a in ANSWERS]
    last, _, _ = tokenise(tok, CONVO, 512, "last")
    assert trained_text(tok, last) == [ANSWERS[1] + eot]
    # The ids are the template's own tokenisation of the whole conversation.
    full = tok.apply_chat_template(CONVO["messages"], tokenize=False)
    assert example.input_ids == tok(full, add_special_tokens=False)["input_ids"]


def test_smollm2_end_of_turn_is_the_eos_token(smol_tokenizer):
    tok, eot = _tokenizer(smol_tokenizer, None)
    assert eot == "<|im_end|>"
    example, _, _ = tokenise(tok, CONVO, 512)
    trained_ids = [t for t, w in zip(example.targets, example.weights) if w > 0]
    assert trained_ids.count(tok.eos_token_id) == 2


def test_all_mode_trains_every_token_but_the_first(smol_tokenizer):
    tok, _ = _tokenizer(smol_tokenizer, None)
    example, _, _ = tokenise(tok, CONVO, 512, "all")
    assert example.trained == len(example) - 1


def test_weight_mode_honours_per_message_weights(smol_tokenizer):
    tok, eot = _tokenizer(smol_tokenizer, "qwen")
    record = copy.deepcopy(CONVO)
    record["messages"][2]["weight"] = 0.0
    record["messages"][4]["weight"] = 2.5
    record["messages"][3]["weight"] = 1.0
    example, _, _ = tokenise(tok, record, 512, "weight")
    # A weighted non-assistant turn trains its own text (no header: the model never writes one).
    assert trained_text(tok, example) == ["Another one?", ANSWERS[1] + eot]
    assert max(example.weights) == 2.5
    # Weights count in the default mode too: weight 0 is not trained, 2.5 scales the loss.
    example, _, _ = tokenise(tok, record, 512)
    assert trained_text(tok, example) == [ANSWERS[1] + eot] and max(example.weights) == 2.5


def test_truncation_keeps_whole_turns_and_drops_untrainable_records(smol_tokenizer):
    tok, eot = _tokenizer(smol_tokenizer, None)
    full, _, _ = tokenise(tok, CONVO, 512)
    first_turn_end = next(t for t in range(len(full)) if full.weights[t] > 0 and full.targets[t] == tok.eos_token_id) + 2
    cut, _, truncated = tokenise(tok, CONVO, first_turn_end + 5)
    assert truncated and len(cut) <= first_turn_end + 5
    assert trained_text(tok, cut) == [ANSWERS[0] + eot]
    result = tokenise_records(tok, [CONVO, CONVO], max_length=12)
    assert not result.examples and result.dropped == {"too_long": 2}
    assert [r["reason"] for r in result.rejects] == ["too_long", "too_long"]
    no_answer = {"messages": [{"role": "user", "content": "hi"}]}
    assert tokenise_records(tok, [no_answer], 512).dropped == {"nothing_to_train": 1}


def test_fallback_chatml_when_the_tokenizer_has_no_template(smol_tokenizer):
    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = None
    prepare_tokenizer(tok)
    assert "<|im_start|>" in tok.chat_template
    example, _, _ = tokenise(tok, CONVO, 512)
    assert trained_text(tok, example) == [a + "<|im_end|>" for a in ANSWERS]


QWEN3_LIKE = (
    "{%- for message in messages -%}{%- set content = message['content'] -%}"
    "{%- if message['role'] == 'assistant' and not loop.last -%}"
    "{%- set content = content.split('</think>')[-1].lstrip() -%}{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\n' + content + '<|im_end|>\n' -}}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
)


def test_template_that_rewrites_history_trains_each_turn_as_written(smol_tokenizer):
    """Reasoning stripped from an earlier turn: that turn trains as the template writes it in
    the conversation (split_turns=never), or in an example of its own with its reasoning."""
    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = QWEN3_LIKE
    prepare_tokenizer(tok)
    record = copy.deepcopy(CONVO)
    record["messages"][2]["content"] = "<think>sky</think>Blue, like the sky."
    record["messages"][4]["content"] = "<think>grass</think>Green."
    example, _, _ = tokenise(tok, record, 512)
    assert trained_text(tok, example) == ["Blue, like the sky.<|im_end|>", "<think>grass</think>Green.<|im_end|>"]
    split = tokenise_records(tok, [record], 512)
    assert [trained_text(tok, e) for e in split.examples] == [
        ["<think>grass</think>Green.<|im_end|>"], ["<think>sky</think>Blue, like the sky.<|im_end|>"]]
    plain, _, _ = tokenise(tok, CONVO, 512)  # nothing rewritten: every answer found
    assert trained_text(tok, plain) == [a + "<|im_end|>" for a in ANSWERS]


def test_end_of_turn_roles_template_kwargs_and_split_settings(smol_tokenizer):
    from pathlib import Path

    tok, eot = _tokenizer(smol_tokenizer, "qwen")
    none, _, _ = tokenise(tok, CONVO, 512, train_on_eot="none")
    assert trained_text(tok, none) == ANSWERS
    last, _, _ = tokenise(tok, CONVO, 512, train_on_eot="last")
    assert trained_text(tok, last) == [ANSWERS[0], ANSWERS[1] + eot]
    users, _, _ = tokenise(tok, CONVO, 512, train_roles=("assistant", "user"))
    assert trained_text(tok, users) == ["Name a colour.", ANSWERS[0] + eot, "Another one?", ANSWERS[1] + eot]
    each = tokenise_records(tok, [CONVO], 512, split_turns="always")
    assert [trained_text(tok, e) for e in each.examples] == [[ANSWERS[0] + eot], [ANSWERS[1] + eot]]
    assert [e.turns for e in each.examples] == [(2,), (4,)]

    qwen3 = copy.deepcopy(smol_tokenizer)
    qwen3.add_special_tokens({"additional_special_tokens": ["<think>", "</think>"]})
    qwen3.chat_template = (Path(__file__).parent / "templates" / "qwen3.jinja").read_text()
    prepare_tokenizer(qwen3)
    thinking, _, _ = tokenise(qwen3, CONVO, 512)
    assert trained_text(qwen3, thinking)[-1] == "<think>\n\n</think>\n\n" + ANSWERS[1] + "<|im_end|>"
    # enable_thinking=False puts the empty think block in the prompt: it is not the model's to write.
    quiet, _, _ = tokenise(qwen3, CONVO, 512, chat_template_kwargs={"enable_thinking": False})
    assert trained_text(qwen3, quiet)[-1] == ANSWERS[1] + "<|im_end|>"
