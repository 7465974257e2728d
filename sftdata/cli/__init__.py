"""The ``sftdata`` command: one thin command per stage, plus ``run``.

Each module in ``COMMAND_MODULES`` adds its commands to ``sftdata.cli.app.app``; heavy
imports (torch, transformers) happen inside the commands, never at import time. This
module itself imports nothing heavy, so that Ctrl-C at any moment of start-up is a
one-line ``interrupted``, not a traceback.

How a command ends (``run_cli``):

====  ==============================================================================
0     done
1     the command's own "no": ``--strict`` saw rejects, ``validate`` found invalid
      records, a file could not be written (disk full, read-only: one line)
2     a mistake in the command line, the options, a recipe or an input file: one line
130   interrupted (Ctrl-C)
143   terminated (SIGTERM); temp files are removed on the way out
====  ==============================================================================

Anything else is a bug in sftdata: the traceback, then a line asking to report it.
"""

from __future__ import annotations

import importlib
import signal
import sys

from sftdata import __version__
from sftdata.errors import Terminated, UserError

COMMAND_MODULES = (
    "sftdata.cli.data_commands",
    "sftdata.cli.clean_commands",
    "sftdata.cli.generate_command",
    "sftdata.cli.train_commands",
    "sftdata.cli.masks_command",
    "sftdata.cli.mix_command",
    "sftdata.cli.audit_command",
    "sftdata.cli.run_command",
    "sftdata.cli.export_command",
    "sftdata.cli.emit_command",
)

BUG_LINE = (f"This is a bug in sftdata {__version__}, not a problem with your data or options. "
            "Please report it with the command you ran and the traceback above.")


def load_commands() -> None:
    """Import every command module so its commands are registered on ``app``."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)


def __getattr__(name: str):
    """``sftdata.cli.app`` stays importable from here without importing typer eagerly."""
    if name == "app":
        from sftdata.cli.app import app

        return app
    raise AttributeError(name)


def _on_sigterm(signum, frame) -> None:
    # A second SIGTERM while cleaning up kills at once (what is left is swept later).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated()


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _click_types() -> tuple[tuple, tuple, tuple]:
    """(ClickException, UsageError, Abort) of every click the installed typer may raise:
    typer >= 0.29 vendors its own copy (``typer._click``, with ``typer.Abort``); older
    ones raise click's."""
    modules = []
    for name in ("typer._click.exceptions", "click.exceptions", "typer.exceptions"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            pass

    def found(attr: str) -> tuple:
        return tuple({getattr(m, attr) for m in modules if hasattr(m, attr)})

    return found("ClickException"), found("UsageError"), found("Abort")


def _os_error_line(exc: OSError) -> str:
    from sftdata.atomic import os_reason

    where = exc.filename if exc.filename is not None else None
    return f"{where}: {os_reason(exc)}" if where else os_reason(exc)


def _template_error(exc: Exception) -> str | None:
    """A user template that tried something unsafe or does not parse: one line."""
    jinja = sys.modules.get("jinja2")
    if jinja is None or not isinstance(exc, jinja.TemplateError):
        return None
    if isinstance(exc, jinja.exceptions.SecurityError):
        return f"template refused: {exc} (templates render sandboxed)"
    if isinstance(exc, jinja.TemplateSyntaxError):
        return f"{exc.filename or 'template'}:{exc.lineno}: template error: {exc.message}"
    return f"template error: {exc}"


def _exception_status(exc: Exception) -> int:
    """Print ``exc`` the way the user should see it; return the exit status."""
    click_exc, usage, abort = _click_types()
    if isinstance(exc, usage):
        message = exc.format_message()
        if type(exc).__name__ == "NoArgsIsHelpError":  # `sftdata` alone: the help text
            print(message, file=sys.stderr)
        else:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            _error(f"{message.rstrip('.')}{hint}")
        return exc.exit_code
    if isinstance(exc, click_exc):
        _error(exc.format_message())
        return exc.exit_code
    if isinstance(exc, abort):
        _error("aborted")
        return 1
    if isinstance(exc, OSError):
        _error(_os_error_line(exc))
        return 1
    if isinstance(exc, MemoryError):
        _error("out of memory")
        return 1
    template = _template_error(exc)
    if template is not None:
        _error(template)
        return 2
    import traceback

    traceback.print_exc()
    print(BUG_LINE, file=sys.stderr)
    return 1


def run_cli(args: list[str] | None = None) -> int:
    """Run the command line ``args`` (default ``sys.argv[1:]``); returns the exit status.

    ``main`` and the tests both go through here, so tests see exactly what users see.
    """
    try:
        from sftdata.cli.app import app
        from sftdata.progress import hide_library_bars

        hide_library_bars()  # commands show sftdata's bars only
        load_commands()
        status = app(args=args, prog_name="sftdata", standalone_mode=False)
    except UserError as exc:
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except SystemExit as exc:
        code = exc.code
        if isinstance(code, str):
            _error(code)
        return code if isinstance(code, int) else (0 if code is None else 1)
    except Exception as exc:  # noqa: BLE001 - sorted into user-facing lines or a bug report
        return _exception_status(exc)
    if status == 130:  # typer turns a Ctrl-C inside a command into exit 130, silently
        print("interrupted", file=sys.stderr)
    return status if isinstance(status, int) else 0


def main() -> None:
    """Console entry point: Ctrl-C and SIGTERM end cleanly from the very first moment."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        status = run_cli()
    except KeyboardInterrupt:  # between run_cli's own handlers and here
        print("interrupted", file=sys.stderr)
        status = 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    # The work is done: a Ctrl-C while the interpreter shuts down must not turn a
    # finished run into a death by SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(status)
