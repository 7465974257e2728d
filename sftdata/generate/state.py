"""Output, rejects and state files of a run, and resuming from them.

The output JSONL is the truth: each accepted record is appended (flushed and fsynced)
the moment it is accepted, so a killed run loses at most the record being written, and
a torn last line is cut off on resume. The small state file beside it
(``<output>.state.json``, replaced atomically) holds the options' fingerprint and the
running totals (requests, tokens, retries). Resuming demands the same fingerprint, reads
the records already written (their instructions rejoin the similarity pool) and
continues until the output holds ``num`` records.

One process at a time: the output file itself is locked (``flock``) while a run writes
it, so a second ``sftdata generate`` of the same output stops with a clear message
instead of appending to the same file.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from sftdata.errors import UserError
from sftdata.io import JsonlAppender, atomic_path, dumps, read_complete_lines
from sftdata.rejects import count_reasons, default_rejects_path


def state_path(output: Path) -> Path:
    """``out.jsonl`` -> ``out.jsonl.state.json``."""
    return output.with_name(output.name + ".state.json")


@dataclass
class Totals:
    """Running totals kept across resumed runs."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    runs: int = 0


class RunFiles:
    """Opens the output/rejects appenders, restoring a previous run when there is one."""

    def __init__(self, output: Path, rejects: Path | None, fingerprint: str, overwrite: bool):
        self.output = Path(output)
        self.rejects_path = Path(rejects) if rejects else default_rejects_path(self.output)
        self.state_path = state_path(self.output)
        self.fingerprint = fingerprint
        self.records: list[dict] = []
        self.totals = Totals()
        self.previous_rejects: dict[str, int] = {}
        if self.output.suffix.lower() not in (".jsonl", ".ndjson"):
            raise UserError(f"{self.output}: the generator writes JSON Lines; use a .jsonl name")
        self._lock = self._lock_output()
        try:
            if overwrite:
                os.ftruncate(self._lock, 0)
                for path in (self.rejects_path, self.state_path):
                    if path.exists():
                        path.unlink()
            self._restore()
            self.out = JsonlAppender(self.output)
            self.rej = JsonlAppender(self.rejects_path)
        except BaseException:
            os.close(self._lock)
            raise

    def _lock_output(self) -> int:
        """Open and lock the output (made if missing) so that no other process writes it."""
        self.output.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.output, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{self.output} is being written by another sftdata process; "
                            "wait for it to finish") from None
        return fd

    def _restore(self) -> None:
        has_output = self.output.exists() and self.output.stat().st_size > 0
        if not self.state_path.exists():
            if has_output:
                raise UserError(
                    f"{self.output} exists but {self.state_path.name} does not, so it was not "
                    "made by this generator; pass --overwrite to replace it"
                )
            if self.rejects_path.exists() and self.rejects_path.stat().st_size > 0:
                raise UserError(
                    f"the rejects file {self.rejects_path} exists but no run of this output made it; "
                    "choose another --rejects, or pass --overwrite to replace it"
                )
            return
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            raise UserError(f"{self.state_path}: unreadable state file; pass --overwrite") from None
        if state.get("fingerprint") != self.fingerprint:
            raise UserError(
                f"{self.output} was generated with different options; re-run with the same "
                "options to resume, or pass --overwrite to start again"
            )
        self.totals = Totals(**state.get("totals", {}))
        self.records = read_complete_lines(self.output)
        self.previous_rejects = count_reasons(read_complete_lines(self.rejects_path))

    def save_state(self, accepted: int) -> None:
        """Replace the state file atomically with the current totals."""
        state = {
            "fingerprint": self.fingerprint,
            "accepted": accepted,
            "totals": self.totals.__dict__,
        }
        with atomic_path(self.state_path) as tmp:
            Path(tmp).write_text(dumps(state) + "\n", encoding="utf-8")

    def close(self) -> None:
        self.out.close()
        self.rej.close()
        os.close(self._lock)


def file_lines(path: Path) -> int:
    """Complete lines in a file (0 if absent), for summaries."""
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return f.read().count(b"\n")
