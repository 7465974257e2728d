"""Quality filters: each reason code on small made-up records, Unicode safety on the
real Chinese Alpaca demo, configs, and the runner."""

from __future__ import annotations

import json

import polars as pl
import pytest

from sftdata.convert import read_canonical
from sftdata.errors import UserError
from sftdata.records import frame_from_records, records_from_frame
from sftdata.steps.filters import (default_filter_steps, load_filter_config, refusal_mask,
                                   run_steps)
from sftdata.steps.registry import all_steps, build_step
from tests.steps.helpers import frame_of

LOREM = ("The committee reviewed the proposal in detail and agreed on a schedule for the "
         "next phase of the work, with a budget and clear owners for every task.")


def reasons(step, pairs, **params):
    """The reason (or None) the step gives each (prompt, response) pair."""
    frame = frame_of(pairs)
    result = build_step(step, params)(frame)
    by_id = dict(zip(result.rejected["id"], result.rejected["reason"]))
    return [by_id.get(f"r{i}") for i in range(len(pairs))]


def test_length_bounds_per_side_and_unit():
    pairs = [("Hi", "ok"), ("Tell me a story", LOREM), ("x " * 50, "fine answer")]
    got = reasons("length", pairs, min_prompt=2, max_prompt=20, min_response=2)
    assert got == ["too_short:prompt_words", None, "too_long:prompt_words"]
    got = reasons("length", pairs, unit="chars", max_response=100)
    assert got == [None, "too_long:response_chars", None]


def test_length_counts_cjk_characters_and_emoji_as_words():
    got = reasons("length", [("写一首诗", "春眠不觉晓"), ("emoji?", "🎉"), ("x", "")], min_response=1)
    assert got == [None, None, "too_short:response_words"]


def test_token_unit_without_a_tokenizer_counts_words():
    got = reasons("length", [("a b c", "one two three four")], unit="tokens", max_response=3)
    assert got == ["too_long:response_words"]


def test_empty_turns_but_tool_call_turns_pass():
    frame = frame_from_records([
        {"id": "a", "source": "s", "messages": [{"role": "user", "content": "  \n"},
                                                {"role": "assistant", "content": "Answer"}]},
        {"id": "b", "source": "s", "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "Sunny."}]},
    ])
    result = build_step("empty_turn")(frame)
    assert result.rejected["id"].to_list() == ["a"]
    assert result.rejected["reason"].to_list() == ["empty_turn"]


def test_echo():
    pairs = [("Repeat: the cat sat.", "the cat sat"), ("Translate 'Hello, world!'", "Hello world"),
             (LOREM + " Summarise it.", LOREM[:60]), ("Sentiment: positive or negative?", "Positive")]
    assert reasons("echo", pairs) == [None, None, "response_repeats_prompt", None]
    assert reasons("echo", [("Say hi!", "say HI")]) == ["output_equals_input"]


def test_markup_residue_but_not_when_markup_is_asked_for():
    residue = "Paris is the capital.<br><br>It is in France.&nbsp;<p>See more</p>"
    pairs = [("Capital of France?", residue),
             ("Write an HTML snippet with a paragraph.", "<p>Hello</p><br><div>x</div>"),
             ("Show code", "```html\n<p>a</p><br><br><div></div>\n```"),
             ("Compare", "a < b and b > c")]
    assert reasons("markup", pairs) == ["markup_residue", None, None, None]


def test_encoding_mojibake_and_control_characters():
    pairs = [("q", "CafÃ© is nice"), ("q", "Itâ€™s broken"), ("q", "bell\x07here"),
             ("q", "Café, naïve, “quotes”, עברית, العربية, 👩‍👩‍👧 and \u200f marks")]
    assert reasons("encoding", pairs) == ["mojibake", "mojibake", "control_chars", None]


def test_symbol_ratio_spares_json_code_and_emoji():
    pairs = [("q", "#### $$$ %%% ^^^ &&& *** ||| ~~~ @@@ +++ === <<< >>>"),
             ("q", json.dumps({"name": "John", "ages": [1, 2, 3], "ok": True})),
             ("q", "🎉🎉🎉 Congratulations!!! 🥳🥳🥳 So happy for you 😀😀")]
    assert reasons("symbol_ratio", pairs) == ["too_many_symbols:response", None, None]


def test_repetition():
    loop = " ".join(["I will help you with that."] * 30)
    lines = "\n".join(["Buy now!"] * 5 + ["Other line", "Another"])
    code = "Here:\n```\n}\n}\n}\n}\nend\nend\n```\nDone."
    got = reasons("repetition", [("q", LOREM), ("q", loop), ("q", lines), ("q", code)])
    assert got[0] is None and got[3] is None
    assert got[1].startswith(("top_ngram", "dup_ngram", "dup_line"))
    assert got[2] == "dup_lines"


def test_repetition_scales_ngrams_for_cjk():
    zh = ("细胞理论是生物科学的一个理论，它认为所有生命体都是由细胞所构成。细胞是所有生物的基本结构和功能单位，"
          "细胞只能通过细胞分裂产生新的细胞。日心说是指太阳是太阳系的中心，行星围绕太阳旋转。")
    assert reasons("repetition", [("q", zh)]) == [None]
    assert reasons("repetition", [("q", "我爱你。" * 60)])[0] is not None


def test_refusal_and_boilerplate_multilingual():
    pairs = [("q", "I’m sorry, but I can’t help with that request."),
             ("q", "As an AI language model, I do not have feelings."),
             ("q", "抱歉，我无法回答这个问题。"), ("q", "作为一个人工智能语言模型，我没有个人观点。"),
             ("q", "Lo siento, pero no puedo hacer eso."),
             ("Write an apology letter", "I'm sorry for missing your party. I hope we meet soon.")]
    assert reasons("refusal", pairs) == ["refusal", "ai_boilerplate", "refusal", "ai_boilerplate",
                                         "refusal", None]
    mask = refusal_mask(pl.Series(["As an AI, I cannot", "Sure!", None]))
    assert mask.to_list() == [True, False, False]


def test_language_filter():
    pairs = [("Explain photosynthesis", "Plants turn light, water and carbon dioxide into sugar."),
             ("解释光合作用", "植物利用光能把水和二氧化碳转化为葡萄糖和氧气。"),
             ("Erkläre die Photosynthese", "Pflanzen wandeln Licht, Wasser und Kohlendioxid in Zucker um."),
             ("2+2", "4")]
    assert reasons("language", pairs, allowed=["en", "zh"]) == [None, None, "language:de", None]


def test_blocklist_whole_words_case_insensitive(tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("# comment\nBadword\n禁词\n", encoding="utf-8")
    pairs = [("q", "this has a BADWORD in it"), ("q", "badwords are not whole"), ("q", "这是禁词。")]
    assert reasons("blocklist", pairs, terms_file=str(terms)) == ["blocklist", None, "blocklist"]
    assert reasons("blocklist", pairs, terms=["whole"]) == [None, "blocklist", None]


def test_regex_filter_and_bad_pattern():
    pairs = [("q", "call 555-1234"), ("q", "no digits")]
    assert reasons("regex", pairs, pattern=r"\d{3}-\d{4}", reason="phone") == ["phone", None]
    assert reasons("regex", pairs, pattern=r"\d", drop_if_match=False) == [None, "regex"]
    with pytest.raises(ValueError):
        build_step("regex", {"pattern": "(unclosed"})


def test_self_instruct_heuristics():
    pairs = [("Hi", "Hello!"), ("Draw a cat for me please", "I can't draw."),
             ("?What is this", "Unclear."), ("Write a Python function to read a CSV file.", "def f(): ..."),
             ("Explain the plot of Hamlet in short.", "A prince avenges his father."),
             ("「翻译」这句话成英文", "Translate this sentence into English."),
             ("¿Qué hora es en Madrid?", "Son las tres.")]
    assert reasons("self_instruct", pairs) == ["instruction_too_short", "unproducible_output",
                                               "starts_with_punctuation", None, None, None, None]


def test_params_forbid_unknown_keys_and_describe_every_field():
    with pytest.raises(ValueError):
        build_step("length", {"min_respons": 3})
    for name, cls in all_steps().items():
        for field_name, field in cls.Params.model_fields.items():
            assert field.description, f"{name}.{field_name} has no description"


def test_default_set_keeps_the_chinese_demo_intact(realworld):
    """CJK text survives the default filters unmangled and is rarely dropped."""
    result = read_canonical(realworld / "alpaca_zh_demo.json")
    kept, rejects, reports = run_steps(result.frame, default_filter_steps())
    assert kept.height >= 0.95 * result.frame.height
    assert {r.step for r in reports} == {s.name for s in default_filter_steps()}
    before = {r["id"]: r for r in records_from_frame(result.frame)}
    for record in records_from_frame(kept):
        assert record == before[record["id"]]
    assert set(kept.columns) == set(result.frame.columns)
    assert all(r["reason"] and r["stage"] for r in rejects)


def test_rtl_and_emoji_records_pass_the_default_set():
    pairs = [("ما هي عاصمة فرنسا؟", "عاصمة فرنسا هي باريس، وهي أكبر مدنها."),
             ("מה השעה?", "השעה עכשיו שלוש אחר הצהריים."),
             ("Send a party emoji", "🎉🥳🎊"), ("Family emoji?", "👩‍👩‍👧‍👦 is a family.")]
    kept, rejects, _ = run_steps(frame_of(pairs), default_filter_steps())
    assert rejects == []
    assert records_from_frame(kept) == records_from_frame(frame_of(pairs))


def test_filter_config_files(tmp_path):
    good = tmp_path / "f.yaml"
    good.write_text("steps:\n  - echo\n  - name: length\n    params: {min_response: 3}\n")
    assert [s.name for s in load_filter_config(good)] == ["echo", "length"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - name: length\n    params: {nope: 1}\n")
    with pytest.raises(UserError, match="nope"):
        load_filter_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("steps: [nosuchstep]\n")
    with pytest.raises(UserError, match="unknown step"):
        load_filter_config(unknown)


def test_default_filters_step_matches_run_steps(realworld):
    frame = read_canonical(realworld / "alpaca_en_demo.json").frame
    kept, rejects, _ = run_steps(frame, default_filter_steps())
    result = build_step("default_filters")(frame)
    assert result.kept["id"].to_list() == kept["id"].to_list()
    assert sorted(result.rejected["reason"].to_list()) == sorted(r["reason"] for r in rejects)


@pytest.mark.slow
def test_token_unit_with_the_bundled_tokenizer():
    """With transformers and a named tokenizer, lengths are real tokenizer tokens."""
    pytest.importorskip("transformers")
    from sftdata.local_model import bundled_model_dir, load_tokenizer

    folder = str(bundled_model_dir())
    response = "Tokenizers split uncommon words like antidisestablishmentarianism into pieces."
    n = len(load_tokenizer(folder)(response, add_special_tokens=False)["input_ids"])
    words = len(response.split())
    assert n != words
    pairs = [("q", response)]
    assert reasons("length", pairs, unit="tokens", tokenizer=folder, max_response=n) == [None]
    assert reasons("length", pairs, unit="tokens", tokenizer=folder, max_response=n - 1) == [
        "too_long:response_tokens"]


def test_unknown_tokenizer_is_a_user_error():
    pytest.importorskip("transformers")
    with pytest.raises(UserError, match="tokenizer"):
        reasons("length", [("q", "a b")], unit="tokens", tokenizer="/no/such/tokenizer", max_response=5)
