"""The typer application object; command modules add their commands to it."""

import typer

from sftdata import __version__

app = typer.Typer(
    name="sftdata",
    help="Build, clean, convert, mix and audit SFT data, and train on it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"sftdata {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Build, clean, convert, mix and audit SFT data, and train on it."""
