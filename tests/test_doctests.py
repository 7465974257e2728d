"""The examples in the converters' docstrings are tests too."""

import doctest
import importlib

import pytest

MODULES = ["sftdata.records", "sftdata.formats", "sftdata.formats.alpaca",
           "sftdata.formats.sharegpt", "sftdata.formats.openai", "sftdata.formats.common"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_readme_python_api_examples():
    """The README's Python API section is a doctest: its examples run as written."""
    from pathlib import Path

    readme = Path(__file__).resolve().parents[1] / "README.md"
    result = doctest.testfile(str(readme), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


def test_api_docstrings():
    for name in ("sftdata.mapping", "sftdata.io", "sftdata.formats.llamafactory_v1",
                 "sftdata.formats.prompt_completion"):
        result = doctest.testmod(importlib.import_module(name))
        assert result.attempted > 0 and result.failed == 0, name
