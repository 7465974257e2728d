"""Loss masks on the real chat templates of today's popular families (tests/trainer/templates,
SmolLM2's vocabulary with each family's special tokens): for every template and case the
decoded trained text is exactly the assistant text as the template writes it plus its
end-of-turn, and no record or turn disappears without a counted reason."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
from chat_families import FAMILIES  # noqa: E402
from sftdata.trainer.chat import Renderer  # noqa: E402
from sftdata.trainer.data import MaskOptions, prepare_tokenizer, tokenise_record, trained_text  # noqa: E402

TOOLS = [{"name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
CALL = {"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def _u(text):
    return {"role": "user", "content": text}


def _a(text, **kw):
    return {"role": "assistant", "content": text, **kw}


CASES = {
    "system": [{"role": "system", "content": "You are terse."}, _u("Name a colour."), _a("Blue, like the sky."),
               _u("Another one?"), _a("Green. Also: grass!")],
    "tools": [_u("Weather in Paris?"), _a("", tool_calls=[CALL]),
              {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call12345"}, _a("It is 21 degrees.")],
    "reasoning": [_u("2+2?"), _a("<think>two and two</think>4"), _u("3+3?"), _a("<think>three and three</think>6")],
    "empty": [_u("Say nothing."), _a(""), _u("Now say hi."), _a("Hi.")],
    "twice": [_u("Ping?"), _a("Pong."), _u("Ping?"), _a("Pong.")],
    "spaces": [_u("  Spaces?  "), _a("  Yes, spaces.  ")],
    "weights": [_u("A?"), _a("First.", weight=0.0), _u("B?"), _a("Second.", weight=1.0)],
    "opens": [_a("Hello, how can I help?"), _u("Bye."), _a("Bye!")],
}

# How each template writes an answer: (text, is it the last turn after the last user query) -> body.
TRIMS = {"llama3.1", "llama3.2", "gemma2", "gemma3", "mistral-v0.3"}


def body(family: str, text: str, last: bool) -> str:
    if family in TRIMS:
        text = text.strip()
    if family == "mistral-v0.3":
        return " " + text
    if family == "qwen3" and last:
        return "<think>\n\n</think>\n\n" + text
    if family == "qwen3-generation":
        return "<think>\n\n</think>\n\n" + text
    return text


TOOL_CALL = {
    "qwen2.5": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    "qwen3": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    "qwen3-generation": '<think>\n\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    "llama3.1": '{"name": "get_weather", "parameters": {"city": "Paris"}}',
    "llama3.2": '{"name": "get_weather", "parameters": {"city": "Paris"}}',
    "mistral-v0.3": '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call12345"}]',
}
# The templates' own checks refuse these conversations (a reject with the template's message).
REFUSED = {("gemma2", "system"): "System role not supported", ("gemma2", "tools"): "alternate",
           ("gemma3", "tools"): "alternate", ("gemma2", "opens"): "alternate", ("gemma3", "opens"): "alternate",
           ("mistral-v0.3", "opens"): "alternate"}


def expected(family: str, case: str) -> tuple[list[list[str]], list[tuple[int, str]]]:
    """The trained text of each example, and the (turn, warning) pairs, for a family and case."""
    f = FAMILIES[family]

    def turn(text, last):
        return body(family, text, last) + f.eot

    if case in ("system", "twice"):
        answers = [m["content"] for m in CASES[case] if m["role"] == "assistant"]
        return [[turn(answers[0], False), turn(answers[1], True)]], []
    if case == "weights":
        return [[turn("Second.", True)]], []
    if case == "empty":
        return [[turn("Hi.", True)]], [(1, "empty_turn")]
    if case == "spaces":
        text = turn("  Yes, spaces.  ", True)
        # SmolLM2's BPE writes "\n" + "  " as one token, so after a header that ends in "\n"
        # the first trained token also holds the header's newline.
        if family in ("smollm2", "qwen2.5", "phi3"):
            text = "\n" + text
        return [[text]], []
    if case == "tools":
        final = turn("It is 21 degrees.", True)
        if family in TOOL_CALL:
            return [[TOOL_CALL[family] + f.eot, final]], []
        return [[final]], [(1, "tool_calls_not_rendered")]
    if case == "reasoning":
        first, second = "<think>two and two</think>4", "<think>three and three</think>6"
        if family == "qwen3":  # earlier reasoning is dropped: that turn trains in an example of its own
            return [[f"<think>\nthree and three\n</think>\n\n6{f.eot}"],
                    [f"<think>\ntwo and two\n</think>\n\n4{f.eot}"]], []
        if family == "qwen3-generation":  # its training variant keeps reasoning in every turn
            return [[f"<think>\ntwo and two\n</think>\n\n4{f.eot}", f"<think>\nthree and three\n</think>\n\n6{f.eot}"]], []
        if family == "deepseek-r1-distill":  # drops reasoning from every turn, the last one too
            return [["4" + f.eot, "6" + f.eot]], [(1, "reasoning_not_rendered"), (3, "reasoning_not_rendered")]
        return [[turn(first, False), turn(second, True)]], []
    if case == "opens":
        first = turn("Hello, how can I help?", False)
        if family == "phi4":  # no BOS: the very first token of a sequence is never a target
            first = first[len("Hello"):]
        return [[first, turn("Bye!", True)]], []
    raise AssertionError(case)


@pytest.fixture(scope="module")
def tokenizers(smol_tokenizer):
    return {name: prepare_tokenizer(f.tokenizer(smol_tokenizer)) for name, f in FAMILIES.items()}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_trained_text_is_the_answer_as_written_plus_end_of_turn(tokenizers, family, case):
    tok = tokenizers[family]
    messages = CASES[case]
    record = {"id": case, "messages": messages, "tools": TOOLS if case == "tools" else None}
    result = tokenise_record(Renderer(tok), record, 4096, MaskOptions())
    if (family, case) in REFUSED:
        assert result.dropped == "template_error" and REFUSED[family, case] in result.detail
        assert not result.examples
        return
    runs, warnings = expected(family, case)
    assert result.dropped is None, result.detail
    assert [trained_text(tok, e) for e in result.examples] == runs
    assert result.warnings == warnings
    # No turn disappears silently: each assistant turn is trained, weighted 0, or warned about.
    trained = {i for e in result.examples for i in e.turns}
    warned = {i for i, _ in warnings if _ != "reasoning_not_rendered"}
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            assert (i in trained) + (i in warned) + (m.get("weight") == 0.0) == 1, (i, trained, warned)
    # The ids are the template's own tokenisation of the (whole, or split-off) conversation.
    for example in result.examples:
        upto = messages[:max(example.turns) + 1] if example is not result.examples[0] else messages
        assert example.input_ids == tok(_hf_render(tok, upto, record["tools"]), add_special_tokens=False)["input_ids"]


def _hf_render(tok, messages, tools):
    """transformers' own rendering (a tool-call turn without, else with, an empty content)."""
    from sftdata.trainer.chat import template_messages, template_tools

    kwargs = {"tools": template_tools(tools)} if tools else {}
    try:
        return tok.apply_chat_template(template_messages(messages), tokenize=False, **kwargs)
    except Exception:
        return tok.apply_chat_template(template_messages(messages, omit_empty_content=False), tokenize=False, **kwargs)
