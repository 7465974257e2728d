"""The one way sftdata builds a jinja2 environment: sandboxed, strict about missing names.

Templates can come from users (``--template-dir``, a recipe's ``generate.template_dir``,
judge rubrics, report overrides), and a recipe is something people share. A plain
``jinja2.Environment`` lets a template reach Python internals
(``{{ cycler.__init__.__globals__.os.popen('id').read() }}``), so every environment here
is jinja2's ``ImmutableSandboxedEnvironment``: no attribute starting with ``_``, no
mutation of lists and dicts passed in, and a ``SecurityError`` for anything unsafe.
"""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


def sandboxed_environment(loader: jinja2.BaseLoader | None = None, *, autoescape: Any = False,
                          **options: Any) -> ImmutableSandboxedEnvironment:
    """A sandboxed environment; undefined names are errors, never silent blanks."""
    options.setdefault("undefined", jinja2.StrictUndefined)
    return ImmutableSandboxedEnvironment(loader=loader, autoescape=autoescape, **options)
