"""Inputs that are not plain local data files, made into one for the one reading path.

``local_input(name)`` returns a ``LocalInput``: the path of a plain .json/.jsonl/
.parquet/.csv/.arrow file that ``sftdata.convert.BatchReader`` reads as usual, and a
temp folder to remove when reading is done (None when the input was already plain):

- ``-``: standard input, JSON Lines, copied to a temp file as it streams in;
- ``NAME.EXT.gz`` / ``NAME.EXT.zst``: gzip or Zstandard, decompressed to a temp file in
  a stream (bounded memory; the temp file is as large as the data);
- ``.arrow`` / ``.feather`` / ``.ipc``: Arrow IPC files are read in place; an Arrow
  *stream* (what ``datasets`` keeps in its cache) is rewritten as an IPC file first;
- ``hf://datasets/ORG/NAME`` or ``ORG/NAME`` (with ``:SPLIT``, default ``train``), when
  no such local path exists: the data set from the local Hugging Face cache through the
  ``datasets`` library, offline (``HF_HUB_OFFLINE=1`` is set for the call), written as
  an Arrow IPC file. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sftdata.errors import UserError

COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")
STDIO = "-"
_HUB_ID = re.compile(r"^(?:hf://datasets/)?([A-Za-z0-9][\w.-]*/[\w.-]+)(?::(\w[\w.-]*))?$")
_COPY_BYTES = 8 << 20


@dataclass
class LocalInput:
    """A plain local data file for ``name``, and the temp folder holding it (if any)."""

    name: str
    path: Path
    temp: tempfile.TemporaryDirectory | None = None

    def close(self) -> None:
        if self.temp is not None:
            self.temp.cleanup()
            self.temp = None


def compression(path: str | os.PathLike) -> str | None:
    """``gzip`` / ``zstd`` by the file's last suffix, else None."""
    return COMPRESSIONS.get(Path(path).suffix.lower())


def inner_name(path: str | os.PathLike) -> str:
    """The name without its compression suffix: ``d.jsonl.gz`` -> ``d.jsonl``."""
    name = Path(path).name
    return name[: -len(Path(name).suffix)] if compression(name) else name


def open_compressed(path: str | os.PathLike, mode: str):
    """A binary file object that (de)compresses ``path`` by its suffix as it streams."""
    kind = compression(path)
    if kind == "gzip":
        return gzip.open(path, mode)
    if kind == "zstd":
        try:
            import zstandard
        except ImportError:  # pragma: no cover - a dependency
            raise UserError(f"{path}: reading .zst needs the zstandard package") from None
        if "r" in mode:
            return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
        return zstandard.ZstdCompressor().stream_writer(open(path, "wb"), closefd=True)
    return open(path, mode)


def is_hub_id(name: str) -> bool:
    """``hf://datasets/org/name`` always; ``org/name[:split]`` when no such local path exists."""
    if name.startswith("hf://"):
        return True
    return bool(_HUB_ID.match(name)) and not Path(name.split(":")[0]).exists() \
        and not Path(name).suffix.lower().lstrip(".") in ("json", "jsonl", "parquet", "csv", "gz", "zst", "arrow")


def local_input(name: str | os.PathLike) -> LocalInput:
    """The plain local file to read for ``name`` (see the module docstring)."""
    text = str(name)
    if text == STDIO:
        temp = tempfile.TemporaryDirectory(prefix="sftdata-stdin-")
        path = Path(temp.name) / "stdin.jsonl"
        with open(path, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, _COPY_BYTES)
        return LocalInput("stdin", path, temp)
    if is_hub_id(text):
        return _hub_input(text)
    path = Path(name)
    if compression(path):
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        temp = tempfile.TemporaryDirectory(prefix="sftdata-unpacked-")
        plain = Path(temp.name) / inner_name(path)
        try:
            with open_compressed(path, "rb") as f, open(plain, "wb") as out:
                shutil.copyfileobj(f, out, _COPY_BYTES)
        except (OSError, EOFError, ValueError) as exc:
            temp.cleanup()
            raise UserError(f"{path}: cannot decompress ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        except Exception as exc:  # zstandard.ZstdError
            temp.cleanup()
            raise UserError(f"{path}: cannot decompress ({exc})") from None
        return _arrow_file(LocalInput(path.name, plain, temp))
    if path.suffix.lower() in ARROW_SUFFIXES and path.is_file():
        return _arrow_file(LocalInput(path.name, path))
    return LocalInput(path.name, path)


def _arrow_file(found: LocalInput) -> LocalInput:
    """An Arrow *stream* (no ``ARROW1`` magic) rewritten as an IPC file that polars scans."""
    if found.path.suffix.lower() not in ARROW_SUFFIXES:
        return found
    with open(found.path, "rb") as f:
        if f.read(6) == b"ARROW1":
            return found
    import polars as pl

    temp = found.temp or tempfile.TemporaryDirectory(prefix="sftdata-arrow-")
    target = Path(temp.name) / (found.path.stem + ".file.arrow")
    try:
        pl.read_ipc_stream(found.path).write_ipc(target)
    except (OSError, pl.exceptions.PolarsError) as exc:
        temp.cleanup()
        raise UserError(f"{found.path}: not an Arrow IPC file or stream ({str(exc).splitlines()[0]})") from None
    return LocalInput(found.name, target, temp)


def _hub_input(name: str) -> LocalInput:
    """A Hub data set from the local cache only, through ``datasets`` (never the network)."""
    match = _HUB_ID.match(name)
    if not match:
        raise UserError(f"{name}: a Hub data set is hf://datasets/ORG/NAME or ORG/NAME[:SPLIT]")
    repo, split = match.group(1), match.group(2) or "train"
    previous = os.environ.get("HF_HUB_OFFLINE"), os.environ.get("HF_DATASETS_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"  # read when imported
    try:
        import datasets
    except ImportError:
        raise UserError(f"{name}: reading a Hub data set needs the `datasets` package "
                        "(pip install datasets); or pass a local file") from None
    for module in ("datasets.config", "huggingface_hub.constants"):  # imported before: set them too
        if module in sys.modules:
            setattr(sys.modules[module], "HF_HUB_OFFLINE", True)
    if "datasets.config" in sys.modules:
        sys.modules["datasets.config"].HF_DATASETS_OFFLINE = True
    try:
        data = datasets.load_dataset(repo, split=split)
    except Exception as exc:  # datasets raises many kinds; all mean "not in the local cache"
        raise UserError(f"{name}: not in the local Hugging Face cache, and sftdata does not download "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    finally:
        for key, value in zip(("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"), previous):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    temp = tempfile.TemporaryDirectory(prefix="sftdata-hub-")
    target = Path(temp.name) / (repo.replace("/", "__") + f".{split}.arrow")
    data.to_polars().write_ipc(target)
    return LocalInput(f"{repo}:{split}", target, temp)
