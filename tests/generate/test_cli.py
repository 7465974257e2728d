"""``sftdata generate`` options, errors and output, through the CLI runner."""

from sftdata.generate.fake_server import FakeServer
from sftdata.io import read_complete_lines


def test_generate_prints_backend_model_and_token_summary(tmp_path, cli):
    with FakeServer() as server:
        result = cli("generate", "-n", "3", "-o", tmp_path / "o.jsonl", "--base-url", server.url)
    assert result.exit_code == 0, result.stderr
    assert "backend: openai-compatible" in result.stderr
    assert "fake-self-instruct" in result.stderr  # the model listed by the server
    assert "total tokens (cost)" in result.stderr
    assert len(read_complete_lines(tmp_path / "o.jsonl")) == 3


def test_template_dir_overrides_one_template(tmp_path, cli):
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "bootstrap.j2").write_text(
        "MARKER. Come up with {{ num_new }} tasks.\n"
        "{% for t in examples %}{{ loop.index }}. {{ t }}\n{% endfor %}")
    with FakeServer() as server:
        result = cli("generate", "-n", "2", "-o", tmp_path / "o.jsonl", "--base-url", server.url,
                     "--template-dir", tdir)
        prompts = list(server.prompts)
    assert result.exit_code == 0, result.stderr
    assert any(p.startswith("MARKER.") for p in prompts)
    assert any("Class label" in p or "Output: " in p for p in prompts)  # the others are shipped ones


def test_bad_template_is_a_one_line_error(tmp_path, cli):
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "classify.j2").write_text("{% for x in %}")
    result = cli("generate", "-o", tmp_path / "o.jsonl", "--base-url", "http://127.0.0.1:9/v1",
                 "--template-dir", tdir)
    assert result.exit_code == 2 and "template error" in result.stderr


def test_option_errors(tmp_path, cli):
    out = tmp_path / "o.jsonl"
    assert "--local" in cli("generate", "-o", out, "--local", "x", "--base-url", "http://h/v1").stderr
    assert "--model" in cli("generate", "-o", out, "--model", "gpt").stderr
    bad = cli("generate", "-o", out, "-n", "0", "--base-url", "http://h/v1")
    assert bad.exit_code == 2 and "--num" in bad.stderr
    wrong = cli("generate", "-o", tmp_path / "o.csv", "--base-url", "http://h/v1")
    assert wrong.exit_code == 2 and ".jsonl" in wrong.stderr
    missing = cli("generate", "-o", out, "--base-url", "http://h/v1", "--seeds", tmp_path / "no.jsonl")
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_unreachable_server_is_one_line_at_once(tmp_path, cli):
    result = cli("generate", "-o", tmp_path / "o.jsonl", "--base-url", "http://127.0.0.1:9/v1")
    assert result.exit_code == 2 and "cannot connect" in result.stderr


def test_budget_exhausted_exits_1_and_rerun_continues(tmp_path, cli):
    out = tmp_path / "o.jsonl"
    with FakeServer() as server:
        short = cli("generate", "-n", "30", "-o", out, "--base-url", server.url, "--max-requests", "10", "-c", "1")
        assert short.exit_code == 1 and "re-run" in short.stderr
        got = len(read_complete_lines(out))
        assert 0 < got < 30
        rest = cli("generate", "-n", "30", "-o", out, "--base-url", server.url, "--max-requests", "500")
    assert rest.exit_code == 0 and len(read_complete_lines(out)) == 30
