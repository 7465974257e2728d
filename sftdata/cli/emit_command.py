"""Command: ``emit`` (the config LLaMA-Factory, axolotl or TRL needs to load a data file)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from sftdata.cli.app import app
from sftdata.cli.common import Format, console


class Tool(str, Enum):
    llamafactory = "llamafactory"
    axolotl = "axolotl"
    trl = "trl"


@app.command()
def emit(
    data_file: Path = typer.Argument(..., help="A data file sftdata wrote (alpaca, sharegpt or openai)."),
    for_: Tool = typer.Option(..., "--for", help="The tool that will load it."),
    name: Optional[str] = typer.Option(None, "--name", help="LLaMA-Factory data set name (default: the file's stem)."),
    dataset_info: Optional[Path] = typer.Option(None, "--dataset-info", help="dataset_info.json to add the entry to (default: beside the data)."),
    replace: bool = typer.Option(False, "--replace", help="Replace an existing, different entry of that name."),
    from_: Optional[Format] = typer.Option(None, "--from", help="The file's format (default: detected from the columns)."),
) -> None:
    """Write the config a trainer needs to load DATA_FILE as is.

    llamafactory: an entry in dataset_info.json (other entries kept); axolotl: a
    `datasets:` YAML snippet in <stem>.axolotl.yaml; trl: a loading script in <stem>.trl.py.
    """
    from sftdata.emit_files import emit_config, emitted_line

    done = emit_config(data_file, for_.value, from_.value if from_ else None, name, dataset_info, replace)
    typer.echo(done.text, nl=False)
    for note in done.notes:
        console.print(f"note: {note}")
    console.print(emitted_line(done))
