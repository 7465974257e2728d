"""``sftdata generate``: grow instruction data from seed tasks with Self-Instruct."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.table import Table

from sftdata.cli.app import app
from sftdata.cli.common import JSON, QUIET, check_paths, console, option_error, print_json, showing_tables, summary_mode
from sftdata.errors import UserError


def _print_summary(summary, num: int) -> None:
    table = Table(title="generate", show_header=False, title_justify="left", box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("records in output", f"{summary.records:,} / {num:,}")
    table.add_row("written by this run", f"{summary.new_records:,}")
    table.add_row("requests", f"{summary.requests:,}")
    table.add_row("prompt tokens", f"{summary.prompt_tokens:,}")
    table.add_row("completion tokens", f"{summary.completion_tokens:,}")
    table.add_row("total tokens (cost)", f"{summary.total_tokens:,}")
    table.add_row("rejected", f"{sum(summary.rejects_by_reason.values()):,}")
    for reason, count in summary.rejects_by_reason.items():
        table.add_row(f"  {reason}", f"{count:,}")
    for cause, count in summary.retries.items():
        table.add_row(f"retried: {cause}", f"{count:,}")
    table.add_row("seconds", f"{summary.seconds:,.1f}")
    console.print(table)
    console.print(f"output: {summary.output}\nrejects: {summary.rejects_path}")


@app.command("generate")
def generate_command(
    num: int = typer.Option(20, "--num", "-n", help="Records the output should hold."),
    output: Path = typer.Option(..., "--output", "-o", help="Output JSONL (canonical records)."),
    seeds: Optional[Path] = typer.Option(None, "--seeds", help="Seed tasks file, any format."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint (…/v1)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name at --base-url."),
    local: Optional[str] = typer.Option(None, "--local", help="Local model folder (embedded backend)."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env",
                                    help="Environment variable holding the API key."),
    concurrency: int = typer.Option(8, "--concurrency", "-c", help="Requests in flight."),
    template_dir: Optional[Path] = typer.Option(None, "--template-dir",
                                                help="Folder overriding the prompt templates."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    temperature: float = typer.Option(0.7, "--temperature", help="Sampling temperature."),
    rouge_threshold: float = typer.Option(0.7, "--rouge-threshold",
                                          help="Reject tasks with ROUGE-L above this."),
    max_requests: Optional[int] = typer.Option(None, "--max-requests",
                                               help="Request budget (default 12*num+40)."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds per request."),
    rejects: Optional[Path] = typer.Option(None, "--rejects", help="Rejects file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start afresh, replacing the output."),
    quiet: bool = QUIET,
    as_json: bool = JSON,
) -> None:
    """Generate instruction data with Self-Instruct (resumable: re-run to continue)."""
    summary_mode(quiet, as_json)
    say = console.print if showing_tables() else (lambda *a, **k: None)
    from sftdata.generate import GenerateConfig, generate
    from sftdata.generate.progress import GenerationProgress

    if local and base_url:
        raise UserError("--local runs a model in-process; it cannot be combined with --base-url")
    if model and not base_url:
        raise UserError("--model names a model at --base-url; for a local folder use --local")
    try:
        cfg = GenerateConfig(
            num=num, output=output, seeds=seeds, base_url=base_url, model=model,
            local_model=local, api_key_env=api_key_env, concurrency=concurrency,
            template_dir=template_dir, seed=seed, temperature=temperature,
            rouge_threshold=rouge_threshold, max_requests=max_requests,
            request_timeout=timeout, rejects=rejects, overwrite=overwrite,
        )
    except ValidationError as exc:
        raise option_error(exc, {"request_timeout": "--timeout", "local_model": "--local"}) from None
    from sftdata.paths import Target
    from sftdata.rejects import default_rejects_path

    # Both files are appended to (and resumed), never replaced: the generator itself
    # refuses existing ones it did not make.
    check_paths([Target("-o", output, "jsonl", replaces=False),
                 Target("--rejects" if rejects else "rejects file", rejects or default_rejects_path(output),
                        "jsonl", replaces=False)],
                inputs=[seeds] if seeds else [])

    if cfg.embedded:
        say("loading the embedded model (first use converts it once, ~30 s)...")
    bar = GenerationProgress(num, console=console, enabled=showing_tables())

    def on_start(run) -> None:
        where = f" at {run.backend.base_url}" if hasattr(run.backend, "base_url") else ""
        say(f"backend: {run.backend.name}{where} · model: {run.backend.model}")
        if run.count.accepted:
            say(f"resuming: {run.count.accepted} of {num} records already in {output}")
        bar.on_start(run)

    with bar:
        summary = generate(cfg, on_start=on_start, on_event=bar.on_event)
    if as_json:
        print_json({"title": "generate", "num": num, **asdict(summary), "total_tokens": summary.total_tokens})
    elif showing_tables():
        console.print(f"backend: {summary.backend} · model: {summary.model}")
        _print_summary(summary, num)
    if not summary.complete:
        console.print(f"[yellow]stopped at the request budget with {summary.records} of {num} "
                      "records; re-run the same command (or raise --max-requests) to continue[/yellow]")
        raise typer.Exit(1)
