"""An Ollama Modelfile for an exported GGUF: the chat template in Ollama's Go-template
syntax, the stop tokens, a default system prompt and sampling parameters.

A Jinja chat template cannot be translated in general, so the template is recognised
by what it *renders*: probe conversations are rendered with the tokenizer's own
template and compared with what a known family (ChatML, Llama 3) renders. Only an exact
match gets that family's Go template, which then gives the same prompt text; a default
system prompt the template inserts when none is given becomes Ollama's ``SYSTEM``.
Otherwise the Modelfile has no ``TEMPLATE`` and Ollama falls back on the chat template
stored in the GGUF, which the Modelfile says in a comment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sftdata.errors import UserError
from sftdata.io import atomic_path

MARKER = "# Ollama Modelfile written by sftdata export-gguf"
PROBE = ("\x01system\x01", "\x01user one\x01", "\x01assistant\x01", "\x01user two\x01")


@dataclass(frozen=True)
class Family:
    """A chat template family: how it renders, its Go template, its stop strings."""

    name: str
    header: str          # text before a turn, with {role}
    footer: str          # text after a turn's content
    go_template: str
    stops: tuple[str, ...]
    bos: bool = False    # the Jinja template starts with the BOS token (llama.cpp adds it)

    def render(self, messages: list[tuple[str, str]]) -> str:
        turns = "".join(self.header.format(role=r) + c + self.footer for r, c in messages)
        return turns + self.header.format(role="assistant")


CHATML = Family(
    "chatml", "<|im_start|>{role}\n", "<|im_end|>\n",
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n",
    ("<|im_end|>", "<|im_start|>"),
)
LLAMA3 = Family(
    "llama3", "<|start_header_id|>{role}<|end_header_id|>\n\n", "<|eot_id|>",
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
    ("<|eot_id|>", "<|start_header_id|>"), bos=True,
)
FAMILIES = (CHATML, LLAMA3)


@dataclass
class TemplateMatch:
    family: Family | None
    default_system: str | None = None


def _render(tokenizer: Any, messages: list[tuple[str, str]]) -> str | None:
    try:
        return tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in messages],
                                             tokenize=False, add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - a template that cannot render a probe is no match
        return None


def match_template(tokenizer: Any) -> TemplateMatch:
    """The family whose rendering the tokenizer's chat template reproduces exactly."""
    if not getattr(tokenizer, "chat_template", None):
        return TemplateMatch(None)
    system, user, answer, user2 = PROBE
    full = [("system", system), ("user", user), ("assistant", answer), ("user", user2)]
    bare = [("user", user)]
    for family in FAMILIES:
        prefix = (tokenizer.bos_token or "") if family.bos else ""
        if _render(tokenizer, full) != prefix + family.render(full):
            continue
        rendered = _render(tokenizer, bare)
        if rendered == prefix + family.render(bare):
            return TemplateMatch(family)
        # A default system prompt: the bare conversation renders with a system turn first.
        head = prefix + family.header.format(role="system")
        tail = family.footer + family.render(bare)
        if rendered and rendered.startswith(head) and rendered.endswith(tail):
            return TemplateMatch(family, rendered[len(head):len(rendered) - len(tail)])
    return TemplateMatch(None)


def _quoted(text: str) -> str:
    if '"""' in text:
        raise UserError('cannot write a Modelfile value containing """')
    return f'"""{text}"""'


def modelfile_text(gguf_name: str, tokenizer: Any, generation: dict | None = None,
                   context_length: int | None = None) -> str:
    """The Modelfile for ``gguf_name`` (a path relative to the Modelfile's folder)."""
    match = match_template(tokenizer)
    lines = [MARKER, f"FROM ./{gguf_name}", ""]
    if match.family is not None:
        lines.append(f"# chat template: {match.family.name} (checked against the model's own template)")
        lines.append(f"TEMPLATE {_quoted(match.family.go_template)}")
        if match.default_system:
            lines.append(f"SYSTEM {_quoted(match.default_system)}")
        stops = list(match.family.stops)
    else:
        lines.append("# chat template: not a known family; Ollama uses the chat template stored in the GGUF")
        stops = [t for t in (getattr(tokenizer, "eos_token", None),) if t]
    lines.append("")
    for stop in dict.fromkeys(stops):
        lines.append(f'PARAMETER stop "{stop}"')
    generation = generation or {}
    if generation.get("do_sample"):
        for key, name in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"),
                          ("repetition_penalty", "repeat_penalty")):
            if generation.get(key) is not None:
                lines.append(f"PARAMETER {name} {generation[key]}")
    if context_length:
        lines.append(f"PARAMETER num_ctx {min(int(context_length), 8192)}")
    return "\n".join(lines) + "\n"


def modelfile_path(gguf_path: str | os.PathLike) -> Path:
    """``model.gguf`` -> ``model.Modelfile`` beside it."""
    path = Path(gguf_path)
    return path.with_name(f"{path.stem}.Modelfile")


def check_writable(path: Path) -> None:
    """Refuse to replace a Modelfile that sftdata did not write."""
    if path.exists():
        first = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
        if first != MARKER:
            raise UserError(f"{path} exists and was not written by sftdata; move it or pass --no-modelfile")


def write_modelfile(gguf_path: str | os.PathLike, model_dir: str | os.PathLike) -> Path:
    """Write ``<stem>.Modelfile`` beside the GGUF from the model folder's tokenizer and configs."""
    import json

    from transformers import AutoConfig, AutoTokenizer

    folder = Path(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    gen_file = folder / "generation_config.json"
    generation = json.loads(gen_file.read_text(encoding="utf-8")) if gen_file.is_file() else {}
    path = modelfile_path(gguf_path)
    check_writable(path)
    text = modelfile_text(Path(gguf_path).name, tokenizer, generation,
                          getattr(config, "max_position_embeddings", None))
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
