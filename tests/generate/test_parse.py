"""Parsing messy completions: lists, yes/no, instances."""

import doctest
import importlib

import pytest

from sftdata.generate.parse import parse_instance, parse_instances, parse_instructions, parse_yes_no


@pytest.mark.parametrize("name", ["sftdata.generate.parse", "sftdata.generate.filters",
                                  "sftdata.generate.rouge"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_numbered_list_with_preamble_wrapping_and_prefixes():
    text = ("Sure! Here are new tasks:\n\n9. Task: Name three rivers in Africa.\n"
            "10) Explain why leaves change colour\nin autumn.\n11. \"Write a toast for a wedding.\"")
    assert parse_instructions(text) == [
        "Name three rivers in Africa.", "Explain why leaves change colour in autumn.",
        "Write a toast for a wedding."]


def test_truncated_completion_drops_only_last_item():
    text = "1. Plan a picnic menu for six.\n2. Summarise a news story.\n3. Translate the"
    assert parse_instructions(text, truncated=True) == [
        "Plan a picnic menu for six.", "Summarise a news story."]
    assert len(parse_instructions(text, truncated=False)) == 3


def test_bullets_and_plain_lines():
    assert parse_instructions("- Give two facts.\n* List three fruits.") == [
        "Give two facts.", "List three fruits."]
    assert parse_instructions("Give two facts about owls.\nName a planet.") == [
        "Give two facts about owls.", "Name a planet."]
    assert parse_instructions("") == []


def test_yes_no():
    assert parse_yes_no("Classification: Yes") is True
    assert parse_yes_no("No.") is False
    assert parse_yes_no("It depends") is None
    assert parse_yes_no("Nothing to say") is None  # 'no' only as a whole word


def test_instances_input_first_and_output_first():
    assert parse_instance("Input: 12 apples\nOutput: twelve\napples", False) == ("12 apples", "twelve\napples")
    assert parse_instance("Output: Paris", False) == ("", "Paris")
    assert parse_instance("no labels at all", False) is None
    assert parse_instance("Class label: Positive\nInput: I love it.", True) == ("I love it.", "Positive")
    assert parse_instance("Input: only input", True) is None


def test_instances_stop_at_a_new_task_and_split_repeats():
    text = "Input: a\nOutput: b\nTask: Something else\nInput: c\nOutput: d"
    assert parse_instances(text, False) == [("a", "b")]
    text = "Input: x\nOutput: 1\nInput: x\nOutput: 2\nInput: y\nOutput: cut"
    assert parse_instances(text, False, truncated=True) == [("x", "1"), ("x", "2")]


def test_unlabelled_reply_is_an_input_less_instance_only_for_input_first():
    assert parse_instances("Paris is the capital of France.", False) == [("", "Paris is the capital of France.")]
    assert parse_instances("Paris is the capital of France.", True) == []
    assert parse_instances("Input: something\nno output label", False) == []


def test_doubly_numbered_items_lose_both_numbers():
    assert parse_instructions("9. 7) Explain what Git is for.") == ["Explain what Git is for."]
