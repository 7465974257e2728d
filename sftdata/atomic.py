"""Atomic writes: a temp file or folder beside the target, renamed into place only once
complete, so a killed or failed write never leaves a half-written output.

Temp names start with ``.sftdata-tmp-<pid>-`` (``sftdata.ownership.TEMP_PREFIX``): a
temp left by SIGKILL or a power cut is swept by the next atomic write into the same
folder once its process is gone. A file written here carries sftdata's mark
(``sftdata.ownership``), a replaced file keeps its permission bits, a folder is replaced
only when sftdata made it. A write the machine refuses (disk full, read-only, too
large) is one ``OutputError`` line naming the target.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from sftdata.errors import OutputError, UserError
from sftdata.ownership import TEMP_PREFIX, folder_is_ours, mark_file, mark_folder

# The process umask, read once (reading it means setting it). Temp files and folders are
# created private; outputs get the permissions a plain open() would have given them, or
# keep those of the file they replace.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")
_swept: set[str] = set()
_live_temps: set[str] = set()  # names of the temps this process has open right now


def temp_prefix() -> str:
    """The start of every temp name this process makes: sftdata's prefix and its pid."""
    return f"{TEMP_PREFIX}{os.getpid()}-"


def _owner_alive(pid: int, name: str) -> bool:
    """Whether the process that made temp ``name`` may still be writing it. A name with
    our own pid that we did not make comes from an earlier process that had the same pid
    (every container's first process is pid 1)."""
    if pid == os.getpid():
        return name in _live_temps
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def sweep_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove temp files and folders in ``folder`` left by sftdata processes that are gone
    (killed with SIGKILL, or a power cut, mid-write). Only names with sftdata's temp prefix
    and the pid of a dead process are touched; returns what was removed.

    Pids are this machine's: the names carry no host, so that a container restarted with
    a new hostname still sweeps what its predecessor left. The price: two machines writing
    one shared folder at the same moment could take each other's temps for stale (runs
    are locked per run directory, which rules that out for ``sftdata run``)."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if not match or _owner_alive(int(match.group(1)), entry.name):
            continue
        path = Path(entry.path)
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


def os_reason(exc: OSError) -> str:
    """An OS error's reason in a few words ("No space left on device")."""
    return exc.strerror or str(exc).splitlines()[0] or type(exc).__name__


_OS_ERROR_IN_TEXT = re.compile(r"([^:]*\(os error \d+\))")


def write_failure(exc: BaseException) -> str | None:
    """Why a write failed, if the machine refused it (disk full, read-only...). Rust
    writers (polars, safetensors) report those inside their own errors ("... I/O error:
    File too large (os error 27)")."""
    if isinstance(exc, OSError):
        return os_reason(exc)
    if isinstance(exc, Exception):
        match = _OS_ERROR_IN_TEXT.search(str(exc))
        if match:
            return match.group(1).strip()
    return None


def _prepare_folder(folder: Path) -> None:
    """Make ``folder`` and, once per process, sweep the stale temps in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot make folder {folder}: {os_reason(exc)}") from None
    key = str(folder.resolve())
    if key not in _swept:
        _swept.add(key)
        sweep_stale_temps(folder)


def _temp_suffix(name: str) -> str:
    # Keep the temp name under the usual 255-byte limit whatever the target's name.
    return "-" + name.encode("utf-8")[:120].decode("utf-8", "ignore")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temp path next to ``path``; rename it over ``path`` only on success.

    A file being replaced keeps its permission bits (a 0600 output stays 0600). The temp
    file is removed on any failure, Ctrl-C and SIGTERM included (the CLI turns SIGTERM
    into an exception); one left by SIGKILL is swept by a later write to the same folder.
    """
    path = Path(path)
    _prepare_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), suffix=_temp_suffix(path.name), dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {os_reason(exc)}") from None
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o666 & ~_UMASK
    _live_temps.add(os.path.basename(tmp))
    try:
        os.fchmod(fd, mode)
        os.close(fd)
        yield Path(tmp)
        mark_file(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        # An OutputError is another file's failure (an output written inside this block):
        # it keeps its own name.
        reason = None if isinstance(exc, OutputError) else write_failure(exc)
        if reason is not None:
            raise OutputError(f"cannot write {path}: {reason}") from None
        raise
    finally:
        _live_temps.discard(os.path.basename(tmp))


def _replaceable(folder: Path) -> bool:
    """A folder sftdata may replace: one it made, or an empty one (nothing to lose)."""
    if folder_is_ours(folder):
        return True
    return folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir())


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, replace: bool = True):
    """Yield a temp folder beside ``target``; move it into place only on success.

    The folder gets sftdata's marker (``sftdata.ownership``). ``replace=True`` replaces
    an existing ``target`` only when sftdata made it; any other folder or file there is a
    one-line error, never deleted. ``replace=False`` keeps a ``target`` that already
    exists (e.g. another process finished the same work first) and discards the temp
    copy. The temp folder is always removed, so a killed or failed write leaves nothing
    half-written at ``target``.
    """
    target = Path(target)
    if replace and (target.exists() or target.is_symlink()) and not _replaceable(target):
        kind = "folder" if target.is_dir() else "file"
        raise UserError(f"{target}: a {kind} sftdata did not make is in the way; "
                        "move it or choose another output folder")
    _prepare_folder(target.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(), suffix=_temp_suffix(target.name), dir=target.parent))
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {os_reason(exc)}") from None
    _live_temps.add(tmp.name)
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        yield tmp
        mark_folder(tmp)
        if target.exists() and replace:
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:
            if replace or not target.exists():
                raise
    except Exception as exc:  # noqa: BLE001 - only the machine's refusals become one line
        reason = write_failure(exc)
        if reason is None or isinstance(exc, UserError):
            raise
        raise OutputError(f"cannot write {target}: {reason}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _live_temps.discard(tmp.name)
