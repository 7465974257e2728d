"""Hostile templates: every template a user can hand sftdata (Self-Instruct prompts via
``--template-dir`` or a recipe's ``generate.template_dir``, a trainer ``chat_template``)
renders sandboxed. The known jinja2 escapes must neither run anything nor crash sftdata:
each ends as one clear error line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftdata.errors import UserError
from sftdata.generate.fake_server import FakeServer
from sftdata.generate.prompts import Prompts, shipped_dir
from tests.safety.helpers import assert_one_line_error

# Each payload tries to create the file PWNED (a shell command, or Python through
# internals); {m} is replaced by its path.
ESCAPES = {
    "cycler_globals": "{{ cycler.__init__.__globals__.os.popen('touch {m}').read() }}",
    "joiner_globals": "{{ joiner.__init__.__globals__.os.popen('touch {m}').read() }}",
    "namespace_globals": "{{ namespace.__init__.__globals__.os.popen('touch {m}').read() }}",
    "lipsum_globals": "{{ lipsum.__globals__['os'].popen('touch {m}').read() }}",
    "subclasses": "{% for c in ''.__class__.__mro__[1].__subclasses__() %}"
                  "{% if c.__name__ == 'Popen' %}{{ c(['touch', '{m}']) }}{% endif %}{% endfor %}",
    "base_subclasses": "{{ ().__class__.__base__.__subclasses__() }}",
    "format_string": "{{ '{0.__init__.__globals__[os].popen}'.format(cycler) }}",
    "format_map": "{{ '{x.__init__.__globals__}'.format_map({'x': cycler}) }}",
    "percent_format": "{{ '%s'|format(cycler.__init__.__globals__) }}",
    "attr_filter": "{{ (cycler|attr('__init__')|attr('__globals__'))['os'].popen('touch {m}').read() }}",
    "self_reference": "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('touch {m}') }}",
    "mutate_argument": "{{ examples.append('touch {m}') }}{{ examples }}",
    "import_statement": "{% import 'os' as os %}{{ os.popen('touch {m}') }}",
    "getattr_via_items": "{{ cycler['__init__']['__globals__']['os'].popen('touch {m}').read() }}",
}


def _template_dir(tmp_path: Path, payload: str, marker: Path) -> Path:
    folder = tmp_path / "evil_templates"
    folder.mkdir(exist_ok=True)
    (folder / "bootstrap.j2").write_text(payload.replace("{m}", str(marker)), encoding="utf-8")
    return folder


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_prompt_templates_cannot_escape(tmp_path, name):
    marker = tmp_path / "PWNED"
    prompts = Prompts(_template_dir(tmp_path, ESCAPES[name], marker))
    examples = ["Write a haiku.", "Name a colour."]
    try:
        text = prompts.render("bootstrap", examples=examples, num_new=3)
    except UserError as exc:
        assert "bootstrap.j2" in str(exc)
    else:  # rendered without error: it must have produced nothing of Python's insides
        assert "<class" not in text and "<built-in" not in text and "<module" not in text
        assert "popen" not in text.lower(), text
    assert not marker.exists(), f"{name}: the template ran a command"
    assert examples == ["Write a haiku.", "Name a colour."]


def test_the_shipped_prompts_still_render():
    prompts = Prompts()
    text = prompts.render("bootstrap", examples=["Write a haiku."], num_new=3)
    assert "Write a haiku." in text
    assert shipped_dir().is_dir()


def test_the_report_environment_is_sandboxed(tmp_path):
    from jinja2.sandbox import SandboxedEnvironment

    from sftdata.audit.report import _environment

    env = _environment()
    assert isinstance(env, SandboxedEnvironment)
    marker = tmp_path / "PWNED"
    with pytest.raises(Exception) as info:
        env.from_string(ESCAPES["cycler_globals"].replace("{m}", str(marker))).render()
    assert type(info.value).__name__ == "SecurityError"
    assert not marker.exists()


def test_generate_with_a_hostile_template_dir_is_one_line(tmp_path, sftdata_cmd):
    marker = tmp_path / "PWNED"
    folder = _template_dir(tmp_path, ESCAPES["cycler_globals"], marker)
    with FakeServer() as server:
        proc = sftdata_cmd("generate", "-n", "2", "-o", tmp_path / "out.jsonl", "--base-url", server.url,
                           "--model", "fake", "--template-dir", folder, cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="bootstrap.j2")
    assert not marker.exists()


def test_a_shared_recipe_with_a_hostile_template_dir_runs_nothing(tmp_path, sftdata_cmd):
    marker = tmp_path / "PWNED"
    _template_dir(tmp_path, ESCAPES["joiner_globals"], marker)
    with FakeServer() as server:
        (tmp_path / "recipe.yaml").write_text(
            "name: shared\n"
            f"run_dir: {tmp_path / 'run'}\n"
            "inputs:\n"
            f"  - generate: {{num: 2, base_url: '{server.url}', model: fake, template_dir: evil_templates}}\n",
            encoding="utf-8")
        proc = sftdata_cmd("run", "recipe.yaml", cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="bootstrap.j2")
    assert not marker.exists()


def test_a_hostile_chat_template_is_refused_by_the_trainer(tmp_path, smol_tokenizer):
    """transformers renders chat templates in an ImmutableSandboxedEnvironment; check it
    holds against the same escapes (trainer.data.render is what the trainer calls)."""
    from copy import deepcopy

    from sftdata.trainer.data import prepare_tokenizer, render

    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    for name, payload in ESCAPES.items():
        if name in ("mutate_argument",):
            payload = "{{ messages.append(1) }}"
        marker = tmp_path / f"PWNED-{name}"
        path = tmp_path / f"{name}.jinja"
        path.write_text(payload.replace("{m}", str(marker)), encoding="utf-8")
        tokenizer = prepare_tokenizer(deepcopy(smol_tokenizer), path)
        try:
            text = render(tokenizer, messages)
        except Exception:  # noqa: BLE001 - any refusal (SecurityError, no loader...) is fine
            pass
        else:
            assert "<class" not in text and "popen" not in text.lower(), (name, text)
        assert not marker.exists(), f"{name}: the chat template ran a command"


@pytest.mark.slow  # loads torch and a model in a subprocess (~20-35 s here)
def test_train_with_a_hostile_chat_template_is_one_line(tmp_path, tiny_model_dir, sftdata_cmd):
    marker = tmp_path / "PWNED"
    template = tmp_path / "evil.jinja"
    template.write_text(ESCAPES["cycler_globals"].replace("{m}", str(marker)), encoding="utf-8")
    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                          {"role": "assistant", "content": f"Answer {i}."}]} for i in range(8)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    proc = sftdata_cmd("train", "data.jsonl", "-o", "out", "--model", tiny_model_dir,
                       "--max-steps", "1", "--set", f"chat_template={template}", cwd=tmp_path, timeout=300)
    assert_one_line_error(proc, 2, contains="SecurityError")
    assert not marker.exists()
