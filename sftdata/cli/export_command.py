"""Command: ``export-gguf`` (a model folder or LoRA adapter -> one GGUF file + Modelfile).

torch, transformers and gguf are imported inside the command.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from sftdata.cli.app import app
from sftdata.cli.common import console


class OutType(str, Enum):
    f16 = "f16"
    q8_0 = "q8_0"
    f32 = "f32"


@app.command("export-gguf")
def export_gguf(
    model_dir: Path = typer.Argument(..., help="A model folder, or a LoRA adapter folder (merged onto its base first)."),
    output: Path = typer.Option(..., "-o", "--output", help="The .gguf file to write."),
    outtype: OutType = typer.Option(OutType.f16, "--outtype", help="Weight type: f16, q8_0 (8-bit, half the size) or f32."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name stored in the file (default: the output's stem)."),
    base: Optional[str] = typer.Option(None, "--base", help="Base model folder of an adapter (default: the one it records)."),
    modelfile: bool = typer.Option(True, "--modelfile/--no-modelfile", help="Also write an Ollama <stem>.Modelfile beside it."),
) -> None:
    """Export to GGUF for llama.cpp and Ollama (Llama, Mistral, Qwen2, Qwen3 architectures)."""
    from sftdata.errors import UserError

    if output.suffix.lower() != ".gguf":
        raise UserError(f"{output}: the output file must end in .gguf")
    from sftdata.trainer.gguf_export import export_gguf as run_export

    result = run_export(model_dir, output, outtype=outtype.value, name=name, base=base, modelfile=modelfile)
    size = output.stat().st_size / 2**20
    console.print(f"gguf: {output} ({result.arch}, {result.outtype}, {result.tensors} tensors, {size:.1f} MiB, "
                  f"pre-tokenizer {result.pre_tokenizer})")
    if result.merged_from:
        console.print(f"merged the adapter {result.merged_from} onto its base first")
    if result.modelfile:
        console.print(f"ollama: {result.modelfile}  (ollama create NAME -f {result.modelfile})")
