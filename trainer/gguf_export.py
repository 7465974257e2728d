"""Export a model folder (or a LoRA adapter, merged first) to one GGUF file for llama.cpp
and Ollama: weights (f32, f16 or q8_0), hyper-parameters, tokenizer and chat template.

    export_gguf("runs/a/train", "model.gguf", outtype="q8_0")

Supported architectures are the Llama family as llama.cpp names it: ``LlamaForCausalLM``
and ``MistralForCausalLM`` (GGUF arch ``llama``), ``Qwen2ForCausalLM`` (``qwen2``) and
``Qwen3ForCausalLM`` (``qwen3``); anything else is a one-line error. Tensors are read one
at a time from the safetensors files and written straight to the file (header and
tensor table first, then the data), so memory stays at about one tensor, and the file
appears at its path only once complete.

Two things differ from a plain copy of the weights:
- llama.cpp's ``llama`` arch rotates adjacent pairs of each head's query/key dimensions,
  transformers' Llama rotates the two halves; the rows of ``q_proj``/``k_proj`` are
  reordered (per head, halves interleaved) so both compute the same attention. Qwen2/3
  use the halves convention in llama.cpp too and are copied as is.
- Llama 3.1-style RoPE scaling becomes llama.cpp's ``rope_freqs`` tensor of per-dimension
  factors; linear and YaRN scaling become keys; other scalings are refused.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sftdata.errors import UserError
from sftdata.io import atomic_path

OUTTYPES = ("f16", "q8_0", "f32")


@dataclass(frozen=True)
class ArchSpec:
    """How one transformers architecture maps onto a llama.cpp one."""

    gguf_arch: str        # gguf.MODEL_ARCH member name
    permute_qk: bool      # reorder q/k rows from halves-RoPE to pairs-RoPE


ARCHITECTURES = {
    "LlamaForCausalLM": ArchSpec("LLAMA", permute_qk=True),
    "MistralForCausalLM": ArchSpec("LLAMA", permute_qk=True),
    "Qwen2ForCausalLM": ArchSpec("QWEN2", permute_qk=False),
    "Qwen3ForCausalLM": ArchSpec("QWEN3", permute_qk=False),
}
SKIPPED = re.compile(r"\.rotary_emb\.inv_freq$")


def supported_architectures() -> str:
    return ", ".join(ARCHITECTURES)


def pairs_rope_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """Reorder the rows of a q/k projection (or bias) from halves-RoPE to pairs-RoPE.

    Within each head the rows are [x0..x(d/2-1), y0..y(d/2-1)]; llama.cpp wants
    [x0, y0, x1, y1, ...].

    >>> pairs_rope_rows(np.arange(8), heads=2).tolist()
    [0, 2, 1, 3, 4, 6, 5, 7]
    """
    rows = weight.shape[0]
    return (weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def llama3_rope_factors(rope: dict, head_dim: int) -> np.ndarray:
    """Per-frequency divisors of Llama 3.1 RoPE scaling (llama.cpp's ``rope_freqs``).

    Long wavelengths are divided by ``factor``, short ones kept, and the band between is
    interpolated smoothly, as transformers' ``_compute_llama3_parameters`` does.
    """
    base = float(rope.get("rope_theta", 10000.0))
    factor = float(rope.get("factor", 8.0))
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    old_context = float(rope.get("original_max_position_embeddings", 8192))
    out = []
    for i in range(0, head_dim, 2):
        wavelength = 2 * math.pi * base ** (i / head_dim)
        if wavelength < old_context / high:
            out.append(1.0)
        elif wavelength > old_context / low:
            out.append(factor)
        else:
            smooth = (old_context / wavelength - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


# --- reading the model folder ------------------------------------------------------

def _safetensors_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [folder / name for name in sorted(set(weight_map.values()))]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        found = "pytorch_model.bin" if (folder / "pytorch_model.bin").exists() else "no weights"
        raise UserError(f"{folder}: no .safetensors weights ({found}); save the model with "
                        "safe_serialization=True first")
    return files


class TensorSource:
    """Lazy access to every tensor of a safetensors model folder, as float32 numpy."""

    def __init__(self, folder: Path):
        from safetensors import safe_open

        self._handles = [safe_open(str(f), framework="pt") for f in _safetensors_files(folder)]
        self.where = {name: h for h in self._handles for name in h.keys()}

    def names(self) -> list[str]:
        return list(self.where)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.where[name].get_slice(name).get_shape())

    def load(self, name: str) -> np.ndarray:
        import torch

        return self.where[name].get_tensor(name).to(torch.float32).numpy()


# --- the plan: which tensors, named and typed how -------------------------------------

@dataclass
class PlannedTensor:
    name: str                               # GGUF name
    shape: tuple[int, ...]
    load: Callable[[], np.ndarray]          # float32 data in the HF layout, transformed
    qtype: Any                              # gguf.GGMLQuantizationType


def _tensor_type(shape: tuple[int, ...], outtype: str) -> Any:
    from gguf import GGMLQuantizationType as Q

    if len(shape) < 2 or outtype == "f32":
        return Q.F32  # norms and biases stay f32: llama.cpp computes them in f32
    if outtype == "q8_0" and shape[-1] % 32 == 0:
        return Q.Q8_0
    return Q.F16


def _encode(data: np.ndarray, qtype: Any) -> np.ndarray:
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import quantize

    if qtype == Q.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == Q.F16:
        return np.ascontiguousarray(data.astype(np.float16))
    return quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)


def _nbytes(shape: tuple[int, ...], qtype: Any) -> tuple[tuple[int, ...], Any, int]:
    """(shape as stored, numpy dtype, bytes) of a tensor written with ``qtype``."""
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import quant_shape_to_byte_shape

    count = math.prod(shape)
    if qtype == Q.F32:
        return shape, np.float32, 4 * count
    if qtype == Q.F16:
        return shape, np.float16, 2 * count
    stored = quant_shape_to_byte_shape(shape, qtype)
    return stored, np.uint8, math.prod(stored)


def plan_tensors(source: TensorSource, config: Any, spec: ArchSpec, outtype: str) -> list[PlannedTensor]:
    """Every GGUF tensor in file order, each with its loader and type."""
    import gguf

    arch = getattr(gguf.MODEL_ARCH, spec.gguf_arch)
    n_layers = config.num_hidden_layers
    names = gguf.get_tensor_name_map(arch, n_layers)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    tied = bool(getattr(config, "tie_word_embeddings", False))
    planned: list[tuple[tuple[int, str], PlannedTensor]] = []
    for hf_name in source.names():
        if SKIPPED.search(hf_name) or (tied and hf_name == "lm_head.weight"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise UserError(f"tensor {hf_name} has no GGUF counterpart for {spec.gguf_arch.lower()} "
                            "(a model variant this exporter does not know)")
        rope_heads = None
        if spec.permute_qk and re.search(r"\.q_proj\.(weight|bias)$", hf_name):
            rope_heads = heads
        elif spec.permute_qk and re.search(r"\.k_proj\.(weight|bias)$", hf_name):
            rope_heads = kv_heads

        def load(hf_name=hf_name, rope_heads=rope_heads) -> np.ndarray:
            data = source.load(hf_name)
            return data if rope_heads is None else pairs_rope_rows(data, rope_heads)

        shape = source.shape(hf_name)
        block = re.search(r"\.layers\.(\d+)\.", hf_name)
        order = (int(block.group(1)) if block else (-1 if "embed" in hf_name else n_layers), gguf_name)
        planned.append((order, PlannedTensor(gguf_name, shape, load, _tensor_type(shape, outtype))))
    if not tied and "output.weight" not in {p.name for _, p in planned}:
        raise UserError("the model has untied output weights but no lm_head.weight tensor")
    tensors = [p for _, p in sorted(planned, key=lambda item: item[0])]
    rope = rope_parameters(config)
    if rope["rope_type"] == "llama3":
        factors = llama3_rope_factors(rope, head_dim(config))
        tensors.append(PlannedTensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", factors.shape,
                                     lambda: factors, _tensor_type(factors.shape, "f32")))
    return tensors


# --- hyper-parameters -------------------------------------------------------------------

def head_dim(config: Any) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def rope_parameters(config: Any) -> dict:
    """RoPE settings with ``rope_type`` and ``rope_theta``, from transformers 5's
    ``rope_parameters`` or 4.x's ``rope_theta`` + ``rope_scaling``."""
    rope = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    rope.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    rope["rope_type"] = rope.get("rope_type") or rope.get("type") or "default"
    return rope


def _check_supported(config: Any) -> ArchSpec:
    arch = (getattr(config, "architectures", None) or ["?"])[0]
    spec = ARCHITECTURES.get(arch)
    if spec is None:
        raise UserError(f"cannot export {arch} to GGUF: supported architectures are "
                        f"{supported_architectures()}")
    rope = rope_parameters(config)
    if rope["rope_type"] not in ("default", "linear", "llama3", "yarn"):
        raise UserError(f"cannot export RoPE scaling {rope['rope_type']!r} to GGUF "
                        "(supported: none, linear, llama3, yarn)")
    if getattr(config, "mlp_bias", False):
        raise UserError("cannot export a Llama with mlp_bias=true to GGUF")
    if getattr(config, "use_sliding_window", False):
        raise UserError("cannot export sliding-window attention to GGUF (use_sliding_window=true)")
    return spec


def write_hparams(writer: Any, config: Any, name: str) -> None:
    """General and architecture keys (``<arch>.context_length`` ...)."""
    import gguf

    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads or config.num_attention_heads)
    writer.add_key_length(head_dim(config))
    writer.add_value_length(head_dim(config))
    writer.add_rope_dimension_count(head_dim(config))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    rope = rope_parameters(config)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    if rope["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif rope["rope_type"] == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(rope["factor"]))
        writer.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))


# --- the export -------------------------------------------------------------------------

@dataclass
class ExportResult:
    path: Path
    arch: str
    outtype: str
    tensors: int
    bytes: int
    pre_tokenizer: str
    merged_from: Path | None = None
    modelfile: Path | None = None


def _write(folder: Path, out: Path, outtype: str, name: str, modelfile: bool) -> ExportResult:
    import gguf
    from transformers import AutoConfig, AutoTokenizer

    from .gguf_vocab import build_vocab, write_vocab

    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    spec = _check_supported(config)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    vocab = build_vocab(tokenizer, config.vocab_size)
    tensors = plan_tensors(TensorSource(folder), config, spec, outtype)

    arch_name = gguf.MODEL_ARCH_NAMES[getattr(gguf.MODEL_ARCH, spec.gguf_arch)]
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]
    with atomic_path(out) as tmp:
        writer = gguf.GGUFWriter(None, arch_name)
        write_hparams(writer, config, name)
        writer.add_file_type(int(file_type))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        write_vocab(writer, vocab)
        total = 0
        for t in tensors:
            stored, dtype, nbytes = _nbytes(t.shape, t.qtype)
            writer.add_tensor_info(t.name, stored, np.dtype(dtype), nbytes, raw_dtype=t.qtype)
            total += nbytes
        writer.write_header_to_file(path=tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in tensors:
            writer.write_tensor_data(_encode(t.load(), t.qtype))
        writer.close()
    result = ExportResult(out, arch_name, outtype, len(tensors), total, vocab.pre)
    if modelfile:
        from .ollama import write_modelfile

        result.modelfile = write_modelfile(out, folder)
    return result


def export_gguf(model_dir: str | os.PathLike, out: str | os.PathLike, outtype: str = "f16",
                name: str | None = None, base: str | None = None, modelfile: bool = True) -> ExportResult:
    """Write ``model_dir`` (a model folder, or a LoRA adapter merged onto its base) to ``out``,
    and an Ollama ``<stem>.Modelfile`` beside it unless ``modelfile`` is false."""
    from .modeling import is_adapter, merge_adapter
    from .ollama import check_writable, modelfile_path

    if outtype not in OUTTYPES:
        raise UserError(f"unknown --outtype {outtype!r}; use one of {', '.join(OUTTYPES)}")
    folder, out = Path(model_dir), Path(out)
    if not folder.is_dir():
        raise UserError(f"model folder not found: {folder}")
    name = name or out.stem
    if modelfile:
        check_writable(modelfile_path(out))  # before the work, not after it
    if not is_adapter(folder):
        if not (folder / "config.json").is_file():
            raise UserError(f"{folder}: no config.json (not a model folder or a LoRA adapter)")
        return _write(folder, out, outtype, name, modelfile)
    with tempfile.TemporaryDirectory(prefix=".merge.", dir=out.parent if out.parent.is_dir() else None) as tmp:
        merged = merge_adapter(folder, Path(tmp) / "merged", base=base)
        result = _write(merged, out, outtype, name, modelfile)
    result.merged_from = folder
    return result

