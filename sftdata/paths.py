"""The checks every command makes on the paths it will write, before it does any work.

A command names what it reads (``inputs``) and what it writes (``Target``s: the output,
the rejects file, a report...) and calls ``check_targets`` first. It refuses, with one
line, anything that would lose data or fail half-way:

* a target that is also an input, or the same file as another target (``convert
  data.rejects.jsonl -o data.jsonl`` would otherwise replace its input with its rejects);
* a target that is a directory, or whose folder cannot be made or written;
* a name whose extension the target's kind cannot hold (rejects are JSON Lines: they keep
  raw records of any shape, which a Parquet or CSV column cannot).

It returns one warning per existing file it will replace that sftdata did not write
(``sftdata.ownership``), for the command to print before it starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

from sftdata.errors import UserError
from sftdata.io import extension
from sftdata.ownership import file_is_ours, folder_is_ours

Kind = Literal["data", "jsonl", "file", "folder"]
JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class Target:
    """One path a command will write.

    ``kind``: ``data`` (the extension picks json/jsonl/parquet/csv), ``jsonl`` (JSON Lines
    only: rejects, generated records), ``file`` (any name: an HTML or JSON report) or
    ``folder``. ``replaces=False`` for a file the command appends to or resumes (its own
    checks decide what to do with one that exists).
    """

    label: str
    path: Path
    kind: Kind = "data"
    replaces: bool = True

    def name(self) -> str:
        return f"{self.label} {self.path}"


def _identity(path: Path) -> tuple:
    """What makes two paths the same file: device and inode when it exists, else the
    resolved path (symlinks and ``..`` followed)."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", os.path.realpath(path))


def _nearest_existing(path: Path) -> Path:
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _check_kind(target: Target) -> None:
    if target.kind == "data":
        extension(target.path)
    elif target.kind == "jsonl" and target.path.suffix.lower() not in JSONL_SUFFIXES:
        raise UserError(f"{target.name()}: written as JSON Lines (it holds records of any shape); "
                        "use a .jsonl name")


def _check_place(target: Target) -> None:
    path = target.path
    if target.kind == "folder":
        if path.exists() and not path.is_dir():
            raise UserError(f"{target.name()}: is a file, not a folder")
    elif path.is_dir():
        raise UserError(f"{target.name()}: is a directory; give a file name")
    folder = _nearest_existing(path)
    if not folder.is_dir():
        raise UserError(f"{target.name()}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{target.name()}: cannot write in {folder} (permission denied or read-only)")


def check_targets(targets: Iterable[Target], inputs: Iterable[str | os.PathLike] = ()) -> list[str]:
    """Refuse unsafe targets (see the module docstring); return the overwrite warnings."""
    targets = list(targets)
    seen: dict[tuple, str] = {}
    for path in inputs:
        seen.setdefault(_identity(Path(path)), f"the input {path}")
    warnings = []
    for target in targets:
        _check_kind(target)
        _check_place(target)
        key = _identity(target.path)
        if key in seen:
            raise UserError(f"{target.name()}: is also {seen[key]}; write it somewhere else")
        seen[key] = target.name()
        if not target.replaces:
            continue
        if target.kind == "folder":
            if target.path.is_dir() and any(target.path.iterdir()) and not folder_is_ours(target.path):
                raise UserError(f"{target.name()}: this folder exists and sftdata did not make it; "
                                "choose a new or empty folder")
        elif target.path.exists() and not file_is_ours(target.path):
            warnings.append(f"note: replacing {target.path}, which sftdata did not write")
    return warnings
