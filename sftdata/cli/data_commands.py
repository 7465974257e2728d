"""Commands: ``convert``, ``validate`` and ``schemas``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sftdata.cli.app import app
from sftdata.cli.common import check_paths, console, exit_for_strict, print_summary, progress, rejects_target
from sftdata.convert import convert_file, read_batches
from sftdata.convert.rejectfile import RejectsWriter
from sftdata.formats import FORMAT_NAMES, check_format
from sftdata.io import atomic_path, extension, location_kind
from sftdata.paths import Target
from sftdata.rejects import default_rejects_path

FORMATS_HELP = "|".join(FORMAT_NAMES)


@app.command()
def convert(
    input: Path = typer.Argument(..., help="Input file (.json, .jsonl, .parquet, .csv)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file; its extension picks the file type."),
    to: str = typer.Option(..., "--to", help=f"Output format: {FORMATS_HELP}."),
    from_: Optional[str] = typer.Option(None, "--from", help="Input format (default: detected from the columns)."),
    rejects: Optional[Path] = typer.Option(None, "--rejects", help="Rejects file (default: <output stem>.rejects.jsonl)."),
    strict: bool = typer.Option(False, "--strict", help="Exit with status 1 if any record is rejected."),
) -> None:
    """Convert between Alpaca, ShareGPT, OpenAI messages and canonical records."""
    check_format(to)
    extension(output)  # fail on a bad output name before reading anything
    rejects_path = rejects or default_rejects_path(output)
    check_paths([Target("-o", output), rejects_target(rejects, rejects_path)], inputs=[input])
    with RejectsWriter(rejects_path) as rejected, progress(f"converting {input.name}") as bar:
        result = convert_file(input, output, to, fmt=from_, progress=bar.advance, on_rejects=rejected.add)
    print_summary(
        f"convert {input.name} ({result.format}) -> {output.name} ({to})",
        result.rows_in,
        result.rows_out,
        dict(sorted(rejected.counts.items(), key=lambda kv: -kv[1])),
        [f"output:  {output}", f"rejects: {rejects_path}"],
    )
    exit_for_strict(strict, rejected.total)


@app.command()
def validate(
    input: Path = typer.Argument(..., help="Input file to check."),
    from_: Optional[str] = typer.Option(None, "--from", help="Input format (default: detected)."),
) -> None:
    """Print FILE:LINE: reason for every invalid record; exit 1 if there is any.

    LINE is the 1-based line for JSONL and the 0-based record index otherwise.
    """
    counts: dict[str, int] = {}
    kept = 0
    with progress(f"reading {input.name}") as bar:
        reader = read_batches(input, fmt=from_, progress=bar.advance)
        for batch in reader:  # batch by batch: memory stays bounded
            kept += batch.frame.height
            for reject in batch.rejects:
                typer.echo(f"{input}:{reject['location']}: {reject['reason']}")
                counts[reject["reason"]] = counts.get(reject["reason"], 0) + 1
    print_summary(
        f"validate {input.name} ({reader.format}; locations are {location_kind(input)}s)",
        reader.rows_in, kept, dict(sorted(counts.items(), key=lambda kv: -kv[1])),
    )
    if counts:
        raise typer.Exit(1)


@app.command()
def schemas(
    out_dir: Path = typer.Option(Path("schemas"), "-o", "--out-dir", help="Folder to write the JSON Schemas to."),
    check: bool = typer.Option(False, "--check", help="Only compare; exit 1 if a file differs."),
) -> None:
    """Generate the JSON Schemas of the canonical record and the three formats."""
    from sftdata.schemas_gen import render_schemas

    stale = []
    rendered = render_schemas()
    if not check:
        check_paths([Target("-o", out_dir / name, "file") for name in rendered])
    for name, text in rendered.items():
        path = out_dir / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            with atomic_path(path) as tmp:
                tmp.write_text(text, encoding="utf-8")
            console.print(f"wrote {path}")
    if stale:
        console.print(f"[red]out of date: {', '.join(stale)} (run `sftdata schemas`)[/red]")
        raise typer.Exit(1)
