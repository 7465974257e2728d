"""The model card (README.md) of an adapter or model written by ``sftdata train`` / ``merge``.

It replaces peft's empty template: the base model (by its Hub name when it has one, so
``base_model`` in the front matter links on the Hub; a local path is only shown in the
text), the data (file, records, and the audit's figures when an audit of that data sits
beside it), the method and hyper-parameters, the metrics, and how to load the result.

Everything is read from files the run already wrote (``train_config.yaml``,
``metrics.jsonl``, ``adapter_config.json``), so ``write_card`` is one call at the end of
``save_model`` and ``merge_adapter``, and a card can be rebuilt for any finished run.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

CARD = "README.md"
# Local folders known to hold a Hub model, by folder-name prefix under the sftdata cache.
BUNDLED_HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
_HF_CACHE = re.compile(r"models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\]")


def hub_name(model: str | os.PathLike | None) -> str | None:
    """The Hub id of a base model given as sftdata gives it (None = bundled, a folder...).

    >>> hub_name(None)
    'HuggingFaceTB/SmolLM2-135M-Instruct'
    >>> hub_name("/home/u/.cache/huggingface/hub/models--Qwen--Qwen2.5-0.5B/snapshots/abc/")
    'Qwen/Qwen2.5-0.5B'
    >>> hub_name("/data/my-model") is None
    True
    """
    from sftdata.local_model import BUNDLED_NAME, cache_dir

    if model is None or str(model) in ("", "bundled", BUNDLED_NAME):
        return BUNDLED_HUB_NAME
    path = Path(model).expanduser()
    bundled_root = cache_dir() / "models"
    if path.name.startswith(BUNDLED_NAME) and path.parent.resolve() == bundled_root.resolve():
        return BUNDLED_HUB_NAME
    found = _HF_CACHE.search(str(path).replace("\\", "/") + "/")
    return f"{found.group(1)}/{found.group(2)}" if found else None


def _read_yaml(path: Path) -> dict:
    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return value if isinstance(value, dict) else {}


def _metrics(run_dir: Path) -> dict:
    """Final train loss, first loss, last eval loss, steps and trained tokens of a run."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return {}
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill; the complete ones still count
    losses = [r for r in rows if r.get("loss") is not None]
    evals = [r for r in rows if r.get("eval_loss") is not None]
    out: dict[str, Any] = {}
    if losses:
        out.update(steps=losses[-1]["step"], first_loss=losses[0]["loss"], final_loss=losses[-1]["loss"],
                   trained_tokens=losses[-1].get("trained_tokens"))
    if evals:
        out["eval_loss"] = evals[-1]["eval_loss"]
    return out


def _audit_for(data: Path, records: int | None) -> dict | None:
    """The audit (``stats.json``) of this data file, when one sits beside it.

    ``<stem>.stats.json`` or the run folder's ``stats.json``; used only when it counts
    the same number of records, so an audit of other data is never shown as this one's.
    """
    for candidate in (data.with_name(f"{data.stem}.stats.json"), data.with_name("stats.json")):
        if candidate.is_file():
            try:
                stats = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(stats, dict) and records is not None and stats.get("records") == records:
                return {**stats, "_path": str(candidate)}
    return None


def data_facts(data: str | None, fmt: str | None) -> dict:
    """File, format, records read and rejected, and the audit of a training data file."""
    if not data:
        return {}
    path = Path(data)
    facts: dict[str, Any] = {"file": str(path)}
    try:
        from sftdata.convert import read_canonical

        result = read_canonical(path, fmt=fmt)
    except Exception as exc:  # noqa: BLE001 - a card never fails a finished run
        facts["error"] = f"not readable when the card was written ({type(exc).__name__})"
        return facts
    facts.update(format=result.format, records=result.frame.height, rejected=len(result.rejects))
    facts["audit"] = _audit_for(path, facts["records"])
    return facts


def _pct(share: Any) -> str:
    return f"{100 * float(share):.1f}%" if isinstance(share, (int, float)) else "n/a"


def _audit_lines(stats: dict) -> list[str]:
    conv = stats.get("conversations") or {}
    lengths = stats.get("lengths") or {}
    unit = lengths.get("token_unit", "words")
    lines = [f"Audit ({stats['_path']}):", ""]
    lines.append(f"- records: {stats.get('records'):,}; formats: "
                 + ", ".join(f"{k} {v:,}" for k, v in (stats.get("formats") or {}).items()))
    if conv:
        lines.append(f"- multi-turn: {_pct((conv.get('multi_turn') or {}).get('share'))}; with a system "
                     f"prompt: {_pct((conv.get('system_prompts') or {}).get('share'))}; with tools: "
                     f"{_pct((conv.get('tools') or {}).get('share'))}")
    for side in ("instruction", "response"):
        tokens = (lengths.get(side) or {}).get("tokens") or {}
        if tokens:
            lines.append(f"- {side} length ({unit}): median {tokens.get('p50')}, p90 {tokens.get('p90')}, "
                         f"max {tokens.get('max')}")
    langs = stats.get("languages") or {}
    if langs.get("available") and langs.get("shares"):
        top = sorted(langs["shares"].items(), key=lambda kv: -kv[1])[:3]
        lines.append("- languages: " + ", ".join(f"{k} {_pct(v)}" for k, v in top))
    dups = stats.get("duplicates") or {}
    if dups.get("available"):
        lines.append(f"- duplicates: exact {_pct((dups.get('exact') or {}).get('rate'))}, near "
                     f"{_pct((dups.get('near') or {}).get('rate'))}")
    filters = stats.get("filters") or {}
    if filters.get("available"):
        lines.append(f"- flagged by the default quality filters: {_pct(filters.get('rate'))}")
    refusals = stats.get("refusals") or {}
    if refusals.get("available"):
        lines.append(f"- refusals: {_pct(refusals.get('rate'))}")
    stages = stats.get("stages") or []
    if stages:
        lines.append("- stages (rows in -> out): " + "; ".join(
            f"{s.get('step')} {s.get('rows_in'):,} -> {s.get('rows_out'):,}" for s in stages))
    return lines


def _method_lines(cfg: dict) -> list[str]:
    method = cfg.get("method", "lora")
    if method == "lora":
        target = cfg.get("lora_target")
        target = target if isinstance(target, str) else ", ".join(target or [])
        detail = (f"LoRA, rank {cfg.get('lora_r')}, alpha {cfg.get('lora_alpha')}, dropout "
                  f"{cfg.get('lora_dropout')}, on {target}")
    elif method == "freeze":
        detail = f"freeze tuning: the last {cfg.get('freeze_trainable_layers')} layers and the final norm trained"
    else:
        detail = "full fine-tuning (every weight)"
    keys = ("learning_rate", "lr_scheduler", "warmup_ratio", "epochs", "max_steps", "batch_size",
            "grad_accum", "max_length", "packing", "train_on", "weight_decay", "max_grad_norm", "dtype", "seed")
    shown = {**cfg}
    if shown.get("learning_rate") is None:  # the method's default was in effect
        from .config import DEFAULT_LR

        shown["learning_rate"] = DEFAULT_LR.get(method)
    rows = [f"| {k} | {shown.get(k)} |" for k in keys if k in shown]
    return [f"Method: {detail}.", "", "| hyper-parameter | value |", "|---|---|", *rows]


def render_card(*, kind: str, title: str, base: str | None, cfg: dict, metrics: dict, data: dict,
                merged_from: str | None = None) -> str:
    """The card text: YAML front matter for the Hub, then the sections."""
    hub = hub_name(base)
    shown_base = hub or str(base)
    front = {"library_name": "peft" if kind == "adapter" else "transformers",
             "pipeline_tag": "text-generation",
             "tags": ["sftdata", "sft", cfg.get("method", "lora") if cfg else "merged"]}
    if hub:
        front["base_model"] = hub
    what = {"adapter": "a LoRA adapter", "model": "a fine-tuned model",
            "merged": "a LoRA adapter merged into its base model"}[kind]
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
             f"# {title}", "",
             f"This is {what}, made with sftdata's trainer.", "",
             f"- base model: `{shown_base}`" + ("" if hub or base is None else " (a local folder)")]
    if merged_from:
        lines.append(f"- merged from the adapter `{merged_from}`")
    lines += ["", "## Data", ""]
    if data.get("file"):
        if "records" in data:
            lines.append(f"`{data['file']}` ({data.get('format')}): {data['records']:,} records read, "
                         f"{data.get('rejected', 0):,} rejected.")
        else:
            lines.append(f"`{data['file']}`: {data.get('error', 'unknown')}.")
        if cfg.get("eval_data"):
            lines.append(f"Held-out data: `{cfg['eval_data']}`.")
        elif cfg.get("eval_split"):
            lines.append(f"Held out for eval loss: {cfg['eval_split']:.1%} of the records.")
        if data.get("audit"):
            lines += ["", *_audit_lines(data["audit"])]
    else:
        lines.append("Not recorded.")
    lines += ["", "## Training", ""]
    lines += _method_lines(cfg) if cfg else ["Not recorded."]
    lines += ["", "## Metrics", ""]
    if metrics:
        names = {"steps": "optimizer steps", "first_loss": "first train loss", "final_loss": "final train loss",
                 "eval_loss": "eval loss", "trained_tokens": "trained tokens"}
        for key, label in names.items():
            if metrics.get(key) is not None:
                value = metrics[key]
                lines.append(f"- {label}: {value:,}" if isinstance(value, int) else f"- {label}: {value:.4f}")
    else:
        lines.append("Not recorded.")
    lines += ["", "## Use", "", *_load_lines(kind, hub or str(base))]
    return "\n".join(lines) + "\n"


def _load_lines(kind: str, base: str) -> list[str]:
    if kind == "adapter":
        code = ["from peft import PeftModel",
                "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                f'base = AutoModelForCausalLM.from_pretrained("{base}")',
                'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
                'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")']
        after = ["", "Merge it into a standalone model with `sftdata merge THIS_FOLDER -o merged/`, or",
                 "export it for llama.cpp / Ollama with `sftdata export-gguf THIS_FOLDER -o model.gguf`."]
    else:
        code = ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
                'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")']
        after = ["", "Export it for llama.cpp / Ollama with `sftdata export-gguf THIS_FOLDER -o model.gguf`."]
    chat = ['messages = [{"role": "user", "content": "Hello!"}]',
            "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True,",
            '                                       return_tensors="pt", return_dict=True)',
            "reply = model.generate(**inputs, max_new_tokens=64)[0][inputs[\"input_ids\"].shape[1]:]",
            "print(tokenizer.decode(reply, skip_special_tokens=True))"]
    return ["```python", *code, *chat, "```", *after]


def write_card(folder: str | os.PathLike, *, title: str | None = None,
               run_dir: str | os.PathLike | None = None,
               merged_from: str | os.PathLike | None = None, base: str | None = None) -> Path:
    """Write ``folder/README.md`` for the model or adapter saved in ``folder``.

    ``title`` names it (default: the folder's name; pass the final name when ``folder``
    is a temp folder moved into place afterwards). ``run_dir`` holds the run's ``train_config.yaml`` and ``metrics.jsonl`` (the output
    folder of ``sftdata train``; default ``folder``). For a merge, ``merged_from`` is the
    adapter folder (its run files are read from there) and ``base`` the base it was
    merged onto.
    """
    folder = Path(folder)
    source = Path(merged_from or run_dir or folder)
    cfg = _read_yaml(source / "train_config.yaml")
    is_adapter = (folder / "adapter_config.json").is_file()
    if base is None and merged_from is not None:
        adapter_cfg = source / "adapter_config.json"
        if adapter_cfg.is_file():
            base = json.loads(adapter_cfg.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if base is None:
        base = cfg.get("model")
    kind = "merged" if merged_from is not None else "adapter" if is_adapter else "model"
    text = render_card(kind=kind, title=title or folder.name, base=base, cfg=cfg,
                       metrics=_metrics(source), data=data_facts(cfg.get("data"), cfg.get("data_format")),
                       merged_from=str(merged_from) if merged_from else None)
    path = folder / CARD
    path.write_text(text, encoding="utf-8")
    return path
