"""What sftdata made: the marks that let it replace or delete only its own files and folders.

sftdata never deletes, and never silently overwrites, something it did not make. Two
marks record what it made:

* A folder it made (a run directory, a stage folder, ``train/``, a merged model, a
  checkpoint) holds a small marker file, ``.made-by-sftdata``. Only a folder with the
  marker is ever pruned or replaced.
* A file it wrote atomically carries an extended attribute (``user.sftdata``) holding
  the file's size and modification time when it was written, so a later run can tell
  "sftdata wrote this and nobody has changed it since" from "someone else's file". Where
  the file system has no extended attributes the answer is simply "not known to be
  ours", and overwriting it is announced: the safe side.

Temp files and folders all start with ``TEMP_PREFIX`` and name the process that made
them, so a later run can sweep the ones whose process is gone (``sftdata.io``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sftdata import __version__

MARKER = ".made-by-sftdata"
TEMP_PREFIX = ".sftdata-tmp-"
_XATTR = "user.sftdata"


def mark_folder(folder: str | os.PathLike) -> None:
    """Put the marker in ``folder`` (made if missing): sftdata may replace or prune it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER
    if not marker.exists():
        marker.write_text(f"made by sftdata {__version__}; sftdata may replace or delete this folder\n",
                          encoding="utf-8")


def folder_is_ours(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is a directory holding sftdata's marker."""
    folder = Path(folder)
    return folder.is_dir() and not folder.is_symlink() and (folder / MARKER).is_file()


def _signature(st: os.stat_result) -> bytes:
    return f"{st.st_size}:{st.st_mtime_ns}".encode()


def mark_file(path: str | os.PathLike) -> None:
    """Record on ``path`` (a finished temp file, before it is renamed) that sftdata wrote it."""
    with contextlib.suppress(OSError, AttributeError):  # no xattrs here: the file stays unmarked
        os.setxattr(path, _XATTR, _signature(os.stat(path)), follow_symlinks=False)


def file_is_ours(path: str | os.PathLike) -> bool:
    """True when sftdata wrote ``path`` and it has not changed since (size and mtime)."""
    try:
        st = os.stat(path, follow_symlinks=False)
        return os.getxattr(path, _XATTR, follow_symlinks=False) == _signature(st)
    except (OSError, AttributeError):
        return False


def is_ours(path: str | os.PathLike) -> bool:
    """A file sftdata wrote (unchanged) or a folder sftdata made."""
    return folder_is_ours(path) if Path(path).is_dir() else file_is_ours(path)
