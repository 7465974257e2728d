"""The chat templates of today's popular model families, as test tokenizers.

Tokenizers cannot be downloaded here, so each family is SmolLM2's real vocabulary with
the family's special tokens added (the ones its template writes), its BOS/EOS and its
real chat template text from tests/trainer/templates/ (see SOURCES.md there).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
DEEPSEEK_TOOL_TOKENS = ["<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>",
                        "<｜tool▁call▁end｜>", "<｜tool▁sep｜>", "<｜tool▁outputs▁begin｜>",
                        "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"]


@dataclass(frozen=True)
class Family:
    name: str
    template: str          # file in tests/trainer/templates/
    eot: str               # what ends an assistant turn in this template
    bos: str | None = None
    eos: str | None = None
    extra: tuple[str, ...] = ()
    system: bool = True    # the template accepts a system message
    tools: bool = True     # the template writes assistant tool calls
    strips_reasoning: bool = False  # earlier turns lose their <think> text

    def tokenizer(self, base):
        tok = copy.deepcopy(base)
        special = {"additional_special_tokens": list(self.extra)} if self.extra else {}
        if self.bos:
            special["bos_token"] = self.bos
        if self.eos:
            special["eos_token"] = self.eos
        if special:
            tok.add_special_tokens(special)
        tok.chat_template = (TEMPLATES / self.template).read_text(encoding="utf-8")
        return tok


QWEN = ("<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>")
QWEN3 = QWEN + ("<think>", "</think>", "<tool_response>", "</tool_response>")
LLAMA = ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>")
MISTRAL = ("[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
           "[TOOL_RESULTS]", "[/TOOL_RESULTS]")

FAMILIES = {f.name: f for f in [
    Family("smollm2", "smollm2.jinja", "<|im_end|>", tools=False),
    Family("qwen2.5", "qwen2_5.jinja", "<|im_end|>", eos="<|im_end|>", extra=QWEN),
    Family("qwen3", "qwen3.jinja", "<|im_end|>", eos="<|im_end|>", extra=QWEN3, strips_reasoning=True),
    Family("qwen3-generation", "qwen3_generation.jinja", "<|im_end|>\n", eos="<|im_end|>", extra=QWEN3),
    Family("llama3.1", "llama3_1.jinja", "<|eot_id|>", bos="<|begin_of_text|>", eos="<|eot_id|>", extra=LLAMA),
    Family("llama3.2", "llama3_2.jinja", "<|eot_id|>", bos="<|begin_of_text|>", eos="<|eot_id|>", extra=LLAMA),
    Family("mistral-v0.3", "mistral_v0_3.jinja", "</s>", bos="<s>", eos="</s>", extra=MISTRAL),
    Family("gemma2", "gemma2.jinja", "<end_of_turn>", bos="<bos>", eos="<eos>",
           extra=("<start_of_turn>", "<end_of_turn>"), system=False, tools=False),
    Family("gemma3", "gemma3.jinja", "<end_of_turn>", bos="<bos>", eos="<eos>",
           extra=("<start_of_turn>", "<end_of_turn>"), tools=False),
    Family("phi3", "phi3.jinja", "<|end|>", bos="<s>", eos="<|endoftext|>",
           extra=("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"), tools=False),
    Family("phi4", "phi4.jinja", "<|im_end|>", eos="<|im_end|>", extra=("<|im_start|>", "<|im_sep|>", "<|im_end|>"),
           tools=False),
    Family("deepseek-r1-distill", "deepseek_r1_distill.jinja", "<｜end▁of▁sentence｜>", bos="<｜begin▁of▁sentence｜>",
           eos="<｜end▁of▁sentence｜>", extra=("<｜User｜>", "<｜Assistant｜>", "<think>", "</think>",
                                              *DEEPSEEK_TOOL_TOKENS), tools=False, strips_reasoning=True),
]}
