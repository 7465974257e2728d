"""Command: ``emit`` (the config LLaMA-Factory, axolotl or TRL needs to load a data file)."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from sftdata.cli.app import app
from sftdata.cli.common import console


class Tool(str, Enum):
    llamafactory = "llamafactory"
    axolotl = "axolotl"
    trl = "trl"


SNIPPET_FILES = {"axolotl": ".axolotl.yaml", "trl": ".trl.py"}


def _data_shape(path: Path, fmt: Optional[str]):
    """The file's format (detected unless given) and shape; undecodable rows are counted."""
    from sftdata.emit import EMIT_FORMATS, shape_of
    from sftdata.errors import UserError
    from sftdata.formats import check_format, detect_format
    from sftdata.rawrows import read_rows

    rows = [r.data for r in read_rows(path) if r.data is not None]
    fmt = check_format(fmt) if fmt else detect_format(rows)
    if fmt not in EMIT_FORMATS:
        raise UserError(f"{path} is in sftdata's {fmt} format, which other tools do not read: "
                        f"convert it first (sftdata convert {path} -o OUT.jsonl --to openai)")
    return shape_of(rows, fmt)


def _write_snippet(path: Path, text: str) -> None:
    """Write a snippet file, replacing it only when sftdata wrote the one there."""
    from sftdata.errors import UserError
    from sftdata.io import atomic_path

    if path.exists() and path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0] != text.split("\n", 1)[0]:
        raise UserError(f"{path} exists and was not written by sftdata emit; move it first")
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@app.command()
def emit(
    data_file: Path = typer.Argument(..., help="A data file sftdata wrote (alpaca, sharegpt or openai)."),
    for_: Tool = typer.Option(..., "--for", help="The tool that will load it."),
    name: Optional[str] = typer.Option(None, "--name", help="LLaMA-Factory data set name (default: the file's stem)."),
    dataset_info: Optional[Path] = typer.Option(None, "--dataset-info", help="dataset_info.json to add the entry to (default: beside the data)."),
    replace: bool = typer.Option(False, "--replace", help="Replace an existing, different entry of that name."),
    from_: Optional[str] = typer.Option(None, "--from", help="The file's format (default: detected from the columns)."),
) -> None:
    """Write the config a trainer needs to load DATA_FILE as is.

    llamafactory: an entry in dataset_info.json (other entries kept); axolotl: a
    `datasets:` YAML snippet in <stem>.axolotl.yaml; trl: a loading script in <stem>.trl.py.
    """
    import json

    from sftdata import emit as configs

    shape = _data_shape(data_file, from_)
    if for_ is Tool.llamafactory:
        info_path = dataset_info or data_file.parent / "dataset_info.json"
        file_name = os.path.relpath(data_file.resolve(), info_path.resolve().parent)
        entry = configs.llamafactory_entry(file_name, shape)
        key = name or data_file.stem
        configs.write_dataset_info(info_path, key, entry, replace=replace)
        typer.echo(json.dumps({key: entry}, indent=2, ensure_ascii=False))
        for note in configs.llamafactory_notes(shape):
            console.print(f"note: {note}")
        console.print(f"dataset_info: {info_path} (entry {key!r}; LLaMA-Factory: dataset_dir: "
                      f"{info_path.parent}, dataset: {key})")
        return
    make = configs.axolotl_snippet if for_ is Tool.axolotl else configs.trl_snippet
    text = make(str(data_file.resolve()), shape)
    out = data_file.with_name(data_file.stem + SNIPPET_FILES[for_.value])
    _write_snippet(out, text)
    typer.echo(text, nl=False)
    console.print(f"{for_.value}: {out}")
