"""The loader config of a data file on disk, written beside it: what ``sftdata emit``,
``sftdata convert --emit`` and a recipe's ``output.emit`` run.

``emit_config(data_file, tool)`` reads the file's shape (``sftdata.emit.shape_of``),
builds the config (``sftdata.emit``) and writes it: LLaMA-Factory's entry merged into a
``dataset_info.json`` (default: beside the data), axolotl's and TRL's snippets as
``<stem>.axolotl.yaml`` / ``<stem>.trl.py`` (replaced only when sftdata wrote them).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from sftdata import emit as configs
from sftdata.errors import UserError
from sftdata.inputs import inner_name
from sftdata.io import atomic_path

TOOLS = configs.TOOLS
SNIPPET_FILES = {"axolotl": ".axolotl.yaml", "trl": ".trl.py"}


@dataclass
class Emitted:
    """What ``emit_config`` wrote: the file, its text (or the entry as JSON), notes."""

    tool: str
    path: Path
    text: str
    notes: list[str] = field(default_factory=list)
    entry_name: str | None = None


def data_shape(path: Path, fmt: str | None = None) -> configs.DataShape:
    """The file's format (detected unless given) and shape; undecodable rows are skipped."""
    from sftdata.formats import check_format, detect_format
    from sftdata.rawrows import read_rows

    rows = [r.data for r in read_rows(path) if r.data is not None]
    fmt = check_format(fmt) if fmt else detect_format(rows)
    if fmt not in configs.EMIT_FORMATS:
        raise UserError(f"{path} is in sftdata's {fmt} format, which other tools do not read: "
                        f"convert it first (sftdata convert {path} -o OUT.jsonl --to openai)")
    return configs.shape_of(rows, fmt)


def _write_snippet(path: Path, text: str) -> None:
    """Write a snippet file, replacing it only when sftdata wrote the one there."""
    if path.exists() and path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0] != text.split("\n", 1)[0]:
        raise UserError(f"{path} exists and was not written by sftdata emit; move it first")
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def snippet_path(data_file: Path, tool: str) -> Path:
    """Where a snippet for ``data_file`` goes: ``<stem>.axolotl.yaml`` / ``<stem>.trl.py``."""
    return data_file.with_name(Path(inner_name(data_file)).stem + SNIPPET_FILES[tool])


def emit_config(data_file: str | os.PathLike, tool: str, fmt: str | None = None, name: str | None = None,
                dataset_info: str | os.PathLike | None = None, replace: bool = False,
                shape: configs.DataShape | None = None) -> Emitted:
    """Write ``tool``'s config for ``data_file`` (see the module docstring)."""
    data_file = Path(data_file)
    if tool not in TOOLS:
        raise UserError(f"unknown tool {tool!r}; use one of {', '.join(TOOLS)}")
    if str(data_file) == "-":
        raise UserError("--emit needs an output file, not - (standard output)")
    shape = shape or data_shape(data_file, fmt)
    if tool == "llamafactory":
        info_path = Path(dataset_info) if dataset_info else data_file.parent / "dataset_info.json"
        file_name = os.path.relpath(data_file.resolve(), info_path.resolve().parent)
        entry = configs.llamafactory_entry(file_name, shape)
        key = name or Path(inner_name(data_file)).stem
        configs.write_dataset_info(info_path, key, entry, replace=replace)
        return Emitted(tool, info_path, json.dumps({key: entry}, indent=2, ensure_ascii=False) + "\n",
                       configs.llamafactory_notes(shape), key)
    make = configs.axolotl_snippet if tool == "axolotl" else configs.trl_snippet
    text = make(str(data_file.resolve()), shape)
    out = snippet_path(data_file, tool)
    _write_snippet(out, text)
    return Emitted(tool, out, text)


def emitted_line(e: Emitted) -> str:
    """One line saying where a config went and how the tool uses it."""
    if e.tool == "llamafactory":
        return (f"dataset_info: {e.path} (entry {e.entry_name!r}; LLaMA-Factory: dataset_dir: "
                f"{e.path.parent}, dataset: {e.entry_name})")
    return f"{e.tool}: {e.path}"
