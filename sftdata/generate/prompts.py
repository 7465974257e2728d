"""The Self-Instruct prompt templates (jinja2), user-overridable file by file.

The shipped templates live in ``templates/self_instruct/`` (installed as
``sftdata.templates``). ``--template-dir DIR`` puts DIR first on the search path, so a
user overrides only the files they copy there. Each template renders the user message
of one chat request. Templates render sandboxed (``sftdata.templating``): a recipe that
ships a template folder cannot reach Python or the shell through it.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import jinja2

from sftdata.errors import UserError
from sftdata.templating import sandboxed_environment

TEMPLATE_NAMES = {
    "bootstrap": "bootstrap.j2",
    "classify": "classify.j2",
    "input_first": "instance_input_first.j2",
    "output_first": "instance_output_first.j2",
}


def shipped_dir() -> Path:
    """The folder of the shipped Self-Instruct templates."""
    return Path(str(importlib.resources.files("sftdata.templates"))) / "self_instruct"


class Prompts:
    """Renders the four prompts; missing variables are errors, not silent blanks."""

    def __init__(self, template_dir: str | Path | None = None):
        paths = []
        if template_dir is not None:
            template_dir = Path(template_dir)
            if not template_dir.is_dir():
                raise UserError(f"{template_dir}: template folder not found")
            paths.append(str(template_dir))
        paths.append(str(shipped_dir()))
        self.env = sandboxed_environment(jinja2.FileSystemLoader(paths))
        self._templates = {}
        for key, name in TEMPLATE_NAMES.items():
            try:
                self._templates[key] = self.env.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                raise UserError(f"{exc.filename}:{exc.lineno}: template error: {exc.message}") from None

    def render(self, key: str, **context) -> str:
        """The user message for prompt ``key`` (bootstrap, classify, input_first, output_first)."""
        try:
            return self._templates[key].render(**context).strip()
        except jinja2.exceptions.SecurityError as exc:
            raise UserError(f"template {TEMPLATE_NAMES[key]}: refused, unsafe: {exc}") from None
        except jinja2.UndefinedError as exc:
            raise UserError(f"template {TEMPLATE_NAMES[key]}: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise UserError(f"template {TEMPLATE_NAMES[key]}: {exc}") from None
