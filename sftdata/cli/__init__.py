"""The ``sftdata`` command: one thin command per stage, plus ``run``.

Each module in ``COMMAND_MODULES`` adds its commands to ``sftdata.cli.app.app``; heavy
imports (torch, transformers) happen inside the commands, never at import time.
"""

from __future__ import annotations

import importlib
import sys

from sftdata.cli.app import app
from sftdata.errors import UserError

COMMAND_MODULES = (
    "sftdata.cli.data_commands",
    "sftdata.cli.clean_commands",
    "sftdata.cli.generate_command",
    "sftdata.cli.train_commands",
    "sftdata.cli.masks_command",
    "sftdata.cli.mix_command",
    "sftdata.cli.audit_command",
    "sftdata.cli.run_command",
)


def load_commands() -> None:
    """Import every command module so its commands are registered on ``app``."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit status 2."""
    load_commands()
    try:
        status = app(standalone_mode=False)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise
    if isinstance(status, int) and status:
        sys.exit(status)
