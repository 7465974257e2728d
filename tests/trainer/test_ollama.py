"""Ollama Modelfiles: the chat template recognised by what it renders, the Go template,
stop tokens and default system prompt; and the Go template rendered by Go's own
text/template (what Ollama runs) against the model's Jinja template."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("transformers")
from sftdata.trainer import ollama  # noqa: E402

DATA = Path(__file__).parent / "data"
CONVERSATIONS = [
    [{"role": "user", "content": "Hi there"}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
     {"role": "user", "content": "Another, with a\nsecond line."}],
]


@pytest.fixture
def llama3_tokenizer(smol_tokenizer):
    """SmolLM2's vocabulary with Llama 3's special tokens and chat template."""
    import copy

    tok = copy.deepcopy(smol_tokenizer)
    tok.add_special_tokens({"bos_token": "<|begin_of_text|>", "additional_special_tokens":
                            ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
    tok.chat_template = (DATA / "llama3_chat_template.jinja").read_text()
    return tok


def test_chatml_with_its_default_system_prompt(smol_tokenizer):
    match = ollama.match_template(smol_tokenizer)
    assert match.family is ollama.CHATML
    assert match.default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    text = ollama.modelfile_text("m.gguf", smol_tokenizer, {"do_sample": True, "temperature": 0.6}, 8192)
    assert text.startswith(ollama.MARKER + "\nFROM ./m.gguf\n")
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM' in text
    assert 'PARAMETER stop "<|im_end|>"' in text and "PARAMETER temperature 0.6" in text
    assert "PARAMETER num_ctx 8192" in text


def test_llama3_template_is_recognised(llama3_tokenizer):
    match = ollama.match_template(llama3_tokenizer)
    assert match.family is ollama.LLAMA3 and match.default_system is None
    assert 'PARAMETER stop "<|eot_id|>"' in ollama.modelfile_text("m.gguf", llama3_tokenizer)


def test_unknown_template_gets_no_go_template(smol_tokenizer):
    import copy

    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = (DATA / "mistral_chat_template.jinja").read_text()
    assert ollama.match_template(tok).family is None
    text = ollama.modelfile_text("m.gguf", tok)
    assert "TEMPLATE" not in text.replace("# chat template", "")
    assert "Ollama uses the chat template stored in the GGUF" in text
    assert f'PARAMETER stop "{tok.eos_token}"' in text


def test_a_template_close_to_chatml_is_not_taken_for_it(smol_tokenizer):
    import copy

    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = smol_tokenizer.chat_template.replace("'\n' + message['content']", "'\n\n' + message['content']")
    assert tok.chat_template != smol_tokenizer.chat_template
    assert ollama.match_template(tok).family is None


GO_RENDER = r'''package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct {
	Role    string
	Content string
}

func main() {
	var in struct {
		Template string
		Messages []Message
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	t := template.Must(template.New("m").Parse(in.Template))
	if err := t.Execute(os.Stdout, map[string]any{"Messages": in.Messages}); err != nil {
		panic(err)
	}
}
'''


def _go_render(tmp_path: Path, template: str, messages: list[dict]) -> str:
    main = tmp_path / "render.go"
    main.write_text(GO_RENDER)
    payload = json.dumps({"Template": template, "Messages": [{"Role": m["role"], "Content": m["content"]}
                                                             for m in messages]})
    env = {"GOCACHE": str(tmp_path / "gocache"), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/local/go/bin",
           "GOFLAGS": "-mod=mod", "GO111MODULE": "off"}
    result = subprocess.run(["go", "run", str(main)], input=payload, capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.integration
@pytest.mark.parametrize("which", ["chatml", "llama3"])
def test_go_template_renders_what_the_jinja_template_renders(which, tmp_path, smol_tokenizer, llama3_tokenizer):
    """Ollama fills .Messages (its SYSTEM first when the request has no system message)
    and runs Go's text/template; the prompt must equal the model's own rendering."""
    if shutil.which("go") is None:
        pytest.skip("the Go toolchain is not installed (apt-get install golang-go)")
    tok = smol_tokenizer if which == "chatml" else llama3_tokenizer
    match = ollama.match_template(tok)
    for messages in CONVERSATIONS:
        sent = messages
        if match.default_system and messages[0]["role"] != "system":
            sent = [{"role": "system", "content": match.default_system}, *messages]
        expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if match.family.bos:
            expected = expected.removeprefix(tok.bos_token)  # llama.cpp adds BOS itself
        assert _go_render(tmp_path, match.family.go_template, sent) == expected
