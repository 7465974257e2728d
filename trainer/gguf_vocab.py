"""The tokenizer part of a GGUF file: byte-level BPE vocabulary, merges, special tokens,
the pre-tokenizer name and the chat template, read from a transformers fast tokenizer.

llama.cpp does not run the Hugging Face tokenizer: it rebuilds it from the GGUF keys
``tokenizer.ggml.*`` and picks its pre-tokenizer (the regex that splits text before BPE)
by *name*. A wrong name still loads and still generates, but splits some text
differently (digits, contractions, runs of spaces), so the name is derived from the
tokenizer's own ``pre_tokenizer`` definition and anything not recognised is an error
rather than a silent "default". The checks behind each name are the regexes llama.cpp
uses for it (``src/llama-vocab.cpp``); tests/trainer/test_gguf_llamacpp.py compares
llama.cpp's tokenization with transformers' for each name.

Only byte-level BPE tokenizers (GPT-2 style: SmolLM2, Llama 3, Qwen2/3) are handled;
SentencePiece tokenizers (Llama 2, Mistral 7B v0.1-0.3) and other pre-tokenizers (e.g.
Mistral's Tekken) are refused with a one-line error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sftdata.errors import UserError

# The split regexes of the pre-tokenizers recognised here, as tokenizer.json writes them.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# llama.cpp ignores the merge ranks of whole-word vocabulary hits for these names, as
# tokenizers does when the model says ``ignore_merges``; the two must agree.
IGNORES_MERGES = {"llama-bpe"}


@dataclass
class GGUFVocab:
    """What the GGUF writer needs from the tokenizer."""

    pre: str
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    special_ids: dict[str, int] = field(default_factory=dict)  # bos, eos, unk, pad, sep
    add_bos: bool = False
    add_eos: bool = False
    chat_template: str | None = None


def _pieces(node: dict | None) -> list[dict]:
    if not node:
        return []
    if node.get("type") == "Sequence":
        return [p for child in node.get("pretokenizers", []) for p in _pieces(child)]
    return [node]


def _split_pattern(piece: dict) -> str | None:
    pattern = piece.get("pattern") or {}
    return pattern.get("Regex") if isinstance(pattern, dict) else None


def pretokenizer_name(spec: dict) -> str:
    """The llama.cpp pre-tokenizer name for a tokenizer.json ``pre_tokenizer`` section.

    >>> pretokenizer_name({"type": "ByteLevel", "add_prefix_space": False, "use_regex": True})
    'gpt-2'
    >>> pretokenizer_name({"type": "Sequence", "pretokenizers": [
    ...     {"type": "Digits", "individual_digits": True},
    ...     {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}]})
    'smollm'
    """
    pieces = _pieces(spec)
    kinds = [p.get("type") for p in pieces]
    last = pieces[-1] if pieces else {}
    if kinds and kinds[-1] == "ByteLevel" and not last.get("add_prefix_space", False):
        if kinds == ["ByteLevel"] and last.get("use_regex", True):
            return "gpt-2"
        if (kinds == ["Digits", "ByteLevel"] and pieces[0].get("individual_digits")
                and last.get("use_regex", True)):
            return "smollm"
        if kinds == ["Split", "ByteLevel"] and not last.get("use_regex", True):
            split = pieces[0]
            if split.get("behavior") == "Isolated" and not split.get("invert", False):
                regex = _split_pattern(split)
                if regex == LLAMA3_SPLIT:
                    return "llama-bpe"
                if regex == QWEN2_SPLIT:
                    return "qwen2"
    shown = json.dumps(spec, ensure_ascii=False)
    raise UserError(f"unsupported tokenizer pre-tokenizer for GGUF export: {shown[:200]} "
                    "(supported: GPT-2, SmolLM, Llama 3 and Qwen2 byte-level BPE)")


def _merge_text(merge: Any) -> str:
    """A merge as GGUF stores it: "left right", a space inside a piece written as U+0120."""
    if isinstance(merge, str):
        return merge
    return " ".join(part.replace(" ", chr(ord(" ") + 256)) for part in merge)


def _added_by_tokenizer(tokenizer: Any) -> tuple[bool, bool]:
    """Whether encoding plain text adds BOS / EOS (what llama.cpp must do too)."""
    plain = tokenizer("Hello world", add_special_tokens=False)["input_ids"]
    full = tokenizer("Hello world")["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    add_bos = len(full) > len(plain) and bos is not None and full[0] == bos
    add_eos = len(full) > len(plain) and eos is not None and full[-1] == eos
    return add_bos, add_eos


def build_vocab(tokenizer: Any, vocab_size: int) -> GGUFVocab:
    """The GGUF tokenizer data of a transformers fast tokenizer, padded to ``vocab_size``.

    ``vocab_size`` is the model's embedding rows (config.vocab_size), which may exceed the
    tokenizer's size; the extra rows become UNUSED ``[PAD<i>]`` tokens as llama.cpp expects.
    """
    from gguf import TokenType

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise UserError("GGUF export needs a fast (tokenizers) tokenizer in the model folder")
    spec = json.loads(backend.to_str())
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or (spec.get("decoder") or {}).get("type") != "ByteLevel":
        kind = model.get("type"), (spec.get("decoder") or {}).get("type")
        raise UserError(f"unsupported tokenizer for GGUF export: model {kind[0]}, decoder {kind[1]} "
                        "(only byte-level BPE tokenizers are supported, not SentencePiece)")
    pre = pretokenizer_name(spec.get("pre_tokenizer") or {})
    if bool(model.get("ignore_merges")) != (pre in IGNORES_MERGES):
        raise UserError(f"unsupported tokenizer for GGUF export: pre-tokenizer {pre} with "
                        f"ignore_merges={bool(model.get('ignore_merges'))}")

    by_id: dict[int, str] = {i: t for t, i in model["vocab"].items()}
    special: set[int] = set()
    user_defined: set[int] = set()
    for added in spec.get("added_tokens") or []:
        by_id[added["id"]] = added["content"]
        (special if added.get("special") else user_defined).add(added["id"])
    if max(by_id) >= vocab_size:
        raise UserError(f"the tokenizer has token id {max(by_id)} but the model only "
                        f"{vocab_size} embedding rows")
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(TokenType.CONTROL if i in special
                         else TokenType.USER_DEFINED if i in user_defined else TokenType.NORMAL)

    ids = {name: getattr(tokenizer, f"{name}_token_id", None) for name in ("bos", "eos", "unk", "pad", "sep")}
    add_bos, add_eos = _added_by_tokenizer(tokenizer)
    template = tokenizer.chat_template
    if isinstance(template, dict):  # several named templates: llama.cpp takes the default
        template = template.get("default") or next(iter(template.values()), None)
    return GGUFVocab(pre=pre, tokens=tokens, token_types=[int(t) for t in types],
                     merges=[_merge_text(m) for m in model.get("merges") or []],
                     special_ids={k: v for k, v in ids.items() if isinstance(v, int)},
                     add_bos=add_bos, add_eos=add_eos, chat_template=template)


def write_vocab(writer: Any, vocab: GGUFVocab) -> None:
    """Add the ``tokenizer.ggml.*`` and ``tokenizer.chat_template`` keys to a GGUFWriter."""
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    writer.add_token_merges(vocab.merges)
    for name, token_id in vocab.special_ids.items():
        getattr(writer, f"add_{name}_token_id")(token_id)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    writer.add_add_space_prefix(False)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)
