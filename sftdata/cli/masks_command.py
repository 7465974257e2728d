"""Command: ``masks`` - see which tokens the trainer would train, before a run costs anything.

Loads only the tokenizer (a model folder, a tokenizer folder or the bundled model),
tokenises every record exactly as ``sftdata train`` does, prints sample records with
the trained tokens highlighted and the counts over the whole file; ``--html`` writes the
same as a page, ``--json`` prints one JSON object per record instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.text import Text

from sftdata.cli.app import app
from sftdata.cli.common import Format, console
from sftdata.cli.train_commands import TrainOn

STYLES = {"trained": "bold black on green3", "context": "grey62", "cut": "grey42 strike"}
MASK_FIELDS = ("train_roles", "train_on_eot", "split_turns", "chat_template_kwargs")


@app.command()
def masks(
    input: Path = typer.Argument(..., help="Training data (any format sftdata reads)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model or tokenizer folder (default: the bundled SmolLM2)."),
    chat_template: Optional[str] = typer.Option(None, "--chat-template", help="Template file, or chatml / chatml-tools."),
    train_on: TrainOn = typer.Option("assistant", "--train-on", help="Which turns are trained."),
    n: int = typer.Option(3, "-n", help="Sample records to show (records with warnings first)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write the samples and counts as an HTML page."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per record (trained runs, drop, warnings)."),
    max_length: int = typer.Option(2048, "--max-length", help="Longest tokenised conversation, as in training."),
    fmt: Optional[Format] = typer.Option(None, "--from", help="Force the input format."),
    set_: List[str] = typer.Option([], "--set", help=f"Another mask setting ({', '.join(MASK_FIELDS)}), e.g. --set split_turns=never."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when turns would train nothing or wrongly."),
) -> None:
    """Show the trained tokens of sample records and count trained/untrained turns over a file."""
    from sftdata.cli.train_commands import _parse_sets
    from sftdata.errors import UserError
    from sftdata.local_model import load_tokenizer
    from sftdata.trainer.config import TrainConfig
    from sftdata.trainer.data import MaskOptions, prepare_tokenizer
    from sftdata.trainer.evaluate import load_records
    from sftdata.trainer.maskcheck import check_masks, record_json

    extra = _parse_sets(set_)
    unknown = [k for k in extra if k not in MASK_FIELDS]
    if unknown:
        raise UserError(f"--set: {', '.join(unknown)} is not a mask setting ({', '.join(MASK_FIELDS)})")
    fields = TrainConfig.model_fields
    train_on = train_on.value
    options = MaskOptions(train_on=train_on, **{k: extra.get(k, fields[k].get_default(call_default_factory=True))
                                                for k in MASK_FIELDS})
    options.train_roles = tuple(options.train_roles)
    if train_on not in ("assistant", "last", "all", "weight"):
        raise UserError(f"--train-on must be assistant, last, all or weight, not {train_on!r}")
    tokenizer = prepare_tokenizer(load_tokenizer(model), chat_template)
    records = load_records(input, fmt.value if fmt else None)
    out = Console(highlight=False, soft_wrap=True)
    warned, plain = [], []

    def keep(index, record, result):
        if as_json:
            sys.stdout.write(json.dumps(record_json(tokenizer, record, index, result), ensure_ascii=False) + "\n")
        bucket = warned if (result.warnings or result.dropped) else plain
        if len(bucket) < n:
            bucket.append((index, record, result))

    report = check_masks(tokenizer, records, max_length, options, keep, keep_text=n > 0)
    samples = sorted((warned + plain)[:n], key=lambda s: s[0])
    if not as_json:
        for index, record, result in samples:
            _print_sample(out, index, record, result)
    summary = console if as_json else out
    summary.print(f"[bold]{input}[/bold] with {model or 'the bundled SmolLM2'}"
                  f"{f' and {chat_template}' if chat_template else ''}, train_on={train_on}")
    for line in report.lines():
        summary.print(line)
    refusal = report.refusal()
    if refusal:
        summary.print(f"[red]sftdata train would refuse: {refusal}[/red]")
    if html:
        _write_html(html, input, model, chat_template, train_on, report, samples)
        summary.print(f"html: {html}")
    if strict and refusal:
        raise typer.Exit(1)


def _print_sample(out: Console, index: int, record: dict, result) -> None:
    from sftdata.trainer.maskcheck import segments
    from sftdata.trainer.masks import WARNINGS

    out.rule(f"record {record.get('id') or index}" + (f"  dropped: {result.dropped} ({result.detail})"
                                                         if result.dropped else ""))
    for turn, code in result.warnings:
        out.print(f"[yellow]turn {turn}: {code}[/yellow] - {WARNINGS[code]}")
    for number, (example, located) in enumerate(zip(result.examples, result.views)):
        if len(result.examples) > 1:
            out.print(f"[bold]example {number + 1} (turns {', '.join(map(str, example.turns))})[/bold]")
        text = Text()
        for piece, kind in segments(located, example):
            if kind != "trained" and len(piece) > 800:
                piece = piece[:400] + " [...] " + piece[-400:]
            text.append(piece, style=STYLES[kind])
        out.print(text)
    out.print()


def _write_html(path: Path, input: Path, model, chat_template, train_on, report, samples) -> None:
    from importlib import resources

    from sftdata.io import atomic_path
    from sftdata.templating import sandboxed_environment
    from sftdata.trainer.maskcheck import segments
    from sftdata.trainer.masks import WARNINGS

    env = sandboxed_environment(autoescape=True)
    page = env.from_string(resources.files("sftdata.templates").joinpath("masks.html.j2").read_text(encoding="utf-8"))
    shown = [{"id": record.get("id") or index, "dropped": result.dropped, "detail": result.detail,
              "warnings": [{"turn": t, "code": c, "message": WARNINGS[c]} for t, c in result.warnings],
              "examples": [{"turns": list(e.turns), "pieces": segments(v, e)}
                           for e, v in zip(result.examples, result.views)]}
             for index, record, result in samples]
    html = page.render(input=str(input), model=model or "the bundled SmolLM2", chat_template=chat_template,
                       train_on=train_on, lines=report.lines(), refusal=report.refusal(), samples=shown)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
