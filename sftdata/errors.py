"""Errors that end a command with one clear line instead of a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or options (missing file, unknown extension...).

    The CLI prints ``error: <message>`` and exits with ``exit_code`` (2); nothing raises
    it for a bad *record*: bad records are rejects, not errors.
    """

    exit_code = 2


class OutputError(UserError):
    """A file or folder could not be written (disk full, read-only, permission denied).

    One line like a ``UserError``, but exit status 1: the command was right, the machine
    said no.
    """

    exit_code = 1


class Terminated(BaseException):
    """Raised in the main thread when the process gets SIGTERM (see ``sftdata.cli``).

    A ``BaseException`` like ``KeyboardInterrupt``, so ``except Exception`` blocks do not
    swallow it while every ``finally`` (temp files, locks) still runs.
    """


class RecordError(ValueError):
    """One record cannot be read or converted; ``reason`` is the reject reason code.

    Reason codes are short snake_case strings, optionally with a ``:detail`` suffix,
    e.g. ``missing_field:output``, ``unknown_role:bot``, ``bad_role_order``.
    """

    def __init__(self, reason: str, message: str | None = None):
        super().__init__(message or reason)
        self.reason = reason
