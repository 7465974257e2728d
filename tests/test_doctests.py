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
