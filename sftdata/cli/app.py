"""The typer application object; command modules add their commands to it."""

import typer

app = typer.Typer(
    name="sftdata",
    help="Build, clean, convert, mix and audit SFT data, and train on it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
