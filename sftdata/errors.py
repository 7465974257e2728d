"""Errors that end a command with one clear line instead of a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or options (missing file, unknown extension...).

    The CLI prints ``error: <message>`` and exits with status 2; nothing else raises it
    for a bad *record*: bad records are rejects, not errors.
    """


class RecordError(ValueError):
    """One record cannot be read or converted; ``reason`` is the reject reason code.

    Reason codes are short snake_case strings, optionally with a ``:detail`` suffix,
    e.g. ``missing_field:output``, ``unknown_role:bot``, ``bad_role_order``.
    """

    def __init__(self, reason: str, message: str | None = None):
        super().__init__(message or reason)
        self.reason = reason
