"""Commands: (being written)."""

from sftdata.cli.app import app  # noqa: F401
