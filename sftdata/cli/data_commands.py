"""Commands: ``convert``, ``validate`` and ``schemas``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sftdata.cli.app import app
from sftdata.cli.common import (
    JSON,
    QUIET,
    Format,
    check_paths,
    console,
    exit_for_strict,
    print_summary,
    progress,
    rejects_note,
    rejects_target,
    summary_mode,
)
from sftdata.cli.emit_command import Tool
from sftdata.convert import convert_file, read_batches
from sftdata.convert.rejectfile import RejectsWriter
from sftdata.formats import FORMAT_NAMES, check_format
from sftdata.io import atomic_path, extension, location_kind
from sftdata.paths import Target
from sftdata.rejects import default_rejects_path

FORMATS_HELP = "|".join(FORMAT_NAMES)


def input_mapping(columns: Optional[str], roles: Optional[str], dataset_info: Optional[Path],
                  name: Optional[str], fmt: Optional[str]):
    """The input's ``ColumnMapping`` from ``--columns``/``--roles`` or ``--dataset-info``/``--name``,
    and the data file a dataset_info entry names (None when it names none)."""
    from sftdata.emit import entry_named, mapping_from_entry, read_dataset_info
    from sftdata.errors import UserError
    from sftdata.mapping import mapping_from_options

    if dataset_info is None:
        if name:
            raise UserError("--name goes with --dataset-info (the LLaMA-Factory entry to read)")
        return mapping_from_options(columns, roles, fmt), None
    if columns or roles:
        raise UserError("--dataset-info gives the mapping: drop --columns/--roles, or drop --dataset-info")
    if not dataset_info.is_file():
        raise UserError(f"{dataset_info}: no such file")
    info = read_dataset_info(dataset_info)
    if not name:
        raise UserError(f"--dataset-info needs --name (entries: {', '.join(list(info)[:10]) or 'none'})")
    mapping = mapping_from_entry(entry_named(info, name))
    file = dataset_info.parent / mapping.file_name if mapping.file_name else None
    return mapping, file


@app.command()
def convert(
    input: Optional[str] = typer.Argument(None, metavar="INPUT", help="Input file (.json, .jsonl, .parquet, .csv, .arrow; "
                                           ".gz/.zst; - for stdin; a Hub id from the local cache). Default "
                                           "with --dataset-info: the entry's file."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file; its extension picks the file type "
                                "(.gz/.zst compress; - writes JSON Lines to stdout)."),
    to: Format = typer.Option(..., "--to", help="Output format."),
    from_: Optional[Format] = typer.Option(None, "--from", help="Input format (default: detected from the columns)."),
    columns: Optional[str] = typer.Option(None, "--columns", help="Map the input's columns: THEIRS=OURS,... "
                                          "(e.g. question=instruction,response=output; speaker=from,text=value)."),
    roles: Optional[str] = typer.Option(None, "--roles", help="Map the input's role values: THEIRS=OURS,... "
                                        "(e.g. bot=assistant,person=user)."),
    dataset_info: Optional[Path] = typer.Option(None, "--dataset-info", help="Read the column and role mapping "
                                                "from a LLaMA-Factory dataset_info.json (with --name)."),
    name: Optional[str] = typer.Option(None, "--name", help="The dataset_info.json entry to read."),
    emit_for: list[Tool] = typer.Option([], "--emit", help="Also write the config this tool needs to load "
                                        "the output (repeatable)."),
    rejects: Optional[Path] = typer.Option(None, "--rejects", help="Rejects file (default: <output folder>/"
                                           ".rejects/<stem>.rejects.jsonl; none written when there is none)."),
    strict: bool = typer.Option(False, "--strict", help="Exit with status 1 if any record is rejected."),
    quiet: bool = QUIET,
    as_json: bool = JSON,
) -> None:
    """Convert between Alpaca, ShareGPT, OpenAI messages and canonical records."""
    from sftdata.errors import UserError

    summary_mode(quiet, as_json)
    to_name, from_name = to.value, from_.value if from_ else None
    mapping, entry_file = input_mapping(columns, roles, dataset_info, name, from_name)
    input = input or (str(entry_file) if entry_file else None)
    if input is None:
        raise UserError("no input: give a data file (or --dataset-info with --name)")
    stdout = str(output) == "-"
    if stdout and as_json:
        raise UserError("-o - writes the data to stdout: drop --json (the summary goes to stderr)")
    if stdout and emit_for:
        raise UserError("--emit needs an output file, not - (standard output)")
    extension(output)  # fail on a bad output name before reading anything
    rejects_path = rejects or default_rejects_path(output)
    targets = [rejects_target(rejects, rejects_path)] + ([] if stdout else [Target("-o", output)])
    from sftdata.inputs import is_hub_id

    local = input != "-" and not is_hub_id(input)
    check_paths(targets, inputs=[input] if local else [])
    label = Path(input).name if local else ("stdin" if input == "-" else input)
    with RejectsWriter(rejects_path) as rejected, progress(f"converting {label}") as bar:
        result = convert_file(input, output, to_name, fmt=from_name, progress=bar,
                              on_rejects=rejected.add, mapping=mapping)
    emitted = _emit(output, emit_for, to_name)
    notes = [f"output:  {'stdout' if stdout else output}", rejects_note(rejects_path, rejected.total)]
    print_summary(
        f"convert {label} ({result.format}) -> {'stdout' if stdout else output.name} ({to_name})",
        result.rows_in,
        result.rows_out,
        dict(sorted(rejected.counts.items(), key=lambda kv: -kv[1])),
        notes + emitted,
        facts={"output": str(output), "rejects": str(rejects_path) if rejected.written else None,
               "format": result.format, "to": to_name},
    )
    exit_for_strict(strict, rejected.total)


def _emit(output: Path, tools: list, fmt: str) -> list[str]:
    """Write each tool's loader config beside ``output``; the summary lines (notes included)."""
    from sftdata.emit_files import emit_config, emitted_line

    lines = []
    for tool in dict.fromkeys(t.value for t in tools):
        done = emit_config(output, tool, fmt)
        lines += [emitted_line(done)] + [f"note: {n}" for n in done.notes]
    return lines


_LISTED = 1000  # invalid records listed by validate --json


@app.command()
def validate(
    input: Path = typer.Argument(..., help="Input file to check."),
    from_: Optional[Format] = typer.Option(None, "--from", help="Input format (default: detected)."),
    quiet: bool = QUIET,
    as_json: bool = JSON,
) -> None:
    """Print FILE:LINE: reason for every invalid record; exit 1 if there is any.

    LINE is the 1-based line for JSONL and the 0-based record index otherwise. With
    --json the invalid records are listed in the JSON object instead (the first 1,000).
    """
    summary_mode(quiet, as_json)
    counts: dict[str, int] = {}
    invalid: list[dict] = []
    kept = 0
    with progress(f"reading {input.name}") as bar:
        reader = read_batches(input, fmt=from_.value if from_ else None, progress=bar)
        for batch in reader:  # batch by batch: memory stays bounded
            kept += batch.frame.height
            for reject in batch.rejects:
                if not as_json:
                    typer.echo(f"{input}:{reject['location']}: {reject['reason']}")
                elif len(invalid) < _LISTED:
                    invalid.append({"location": reject["location"], "reason": reject["reason"]})
                counts[reject["reason"]] = counts.get(reject["reason"], 0) + 1
    print_summary(
        f"validate {input.name} ({reader.format}; locations are "
        f"{'lines' if location_kind(input) == 'line' else 'record indexes'})",
        reader.rows_in, kept, dict(sorted(counts.items(), key=lambda kv: -kv[1])),
        facts={"format": reader.format, "location": location_kind(input), "invalid": invalid,
               "invalid_listed": len(invalid)},
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
