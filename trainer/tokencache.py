"""Tokenising a data set once: in parallel worker processes, cached on disk.

Rendering each conversation with its chat template and locating its turns is pure Python
per record (masks.py): 23-58k tokens/s in one process, hours for a million chats, and
under ``torchrun`` / ``accelerate launch`` every process used to do all of it. Here:

- the records are split across ``workers`` forked processes (Linux; one process elsewhere),
  each tokenising a contiguous share; results come back in record order, identical to a
  single process's;
- the results are cached in ``$SFTDATA_CACHE/tokenised/<key>.pkl``, the key a hash of the
  records, the tokenizer (its vocabulary and merges, added tokens, chat template), the mask
  options, ``max_length`` and the source of the tokenising code, so any change to those
  tokenises afresh and nothing stale is reused;
- in a multi-process run the main process tokenises first and writes the cache; the
  others then read it (``loop.py``: ``accelerator.main_process_first``).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pickle
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from .data import MaskOptions, RecordMasks, tokenise_record

FORMAT = 1
_CODE = ("data.py", "masks.py", "chat.py", "tokencache.py")
_WORKER: dict[str, Any] = {}  # what forked workers inherit: tokenizer, max_length, options


def default_workers() -> int:
    """Worker processes for tokenising: the cores this process may use, at most 16."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(16, cores))


def cache_key(tokenizer: Any, records: Sequence[dict], max_length: int, options: MaskOptions) -> str:
    """A hash of everything the tokenised result depends on."""
    h = hashlib.sha256(f"sftdata-tokenised-v{FORMAT}".encode())
    here = Path(__file__).resolve().parent
    for name in _CODE:
        h.update((here / name).read_bytes())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update((backend.to_str() if backend is not None else repr(tokenizer.get_vocab())).encode())
    h.update(json.dumps({"template": tokenizer.chat_template, "added": sorted(tokenizer.get_added_vocab().items()),
                         "special": {k: str(v) for k, v in tokenizer.special_tokens_map.items()},
                         "max_length": max_length, "options": asdict(options)},
                        sort_keys=True, default=str).encode())
    for record in records:
        h.update(json.dumps(record, sort_keys=True, default=str, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:32]


def _tokenise_share(bounds: tuple[int, int]) -> list[RecordMasks]:
    from .chat import Renderer

    tokenizer, records, max_length, options = (_WORKER[k] for k in ("tokenizer", "records", "max_length", "options"))
    renderer = Renderer(tokenizer, options.chat_template_kwargs)
    return [tokenise_record(renderer, records[i], max_length, options) for i in range(*bounds)]


def tokenise_all(tokenizer: Any, records: Sequence[dict], max_length: int, options: MaskOptions,
                 workers: int = 1) -> list[RecordMasks]:
    """``tokenise_record`` of every record, in order, over ``workers`` processes."""
    from .chat import Renderer

    if workers <= 1 or len(records) < 2 * workers or sys.platform != "linux":
        renderer = Renderer(tokenizer, options.chat_template_kwargs)
        return [tokenise_record(renderer, r, max_length, options) for r in records]
    _WORKER.update(tokenizer=tokenizer, records=records, max_length=max_length, options=options)
    # Several shares per worker, so one slow share does not leave the others idle.
    shares = workers * 4
    step = -(-len(records) // shares)
    bounds = [(i, min(i + step, len(records))) for i in range(0, len(records), step)]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the Rust pool does not survive fork
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return [result for share in pool.map(_tokenise_share, bounds) for result in share]
    finally:
        _WORKER.clear()


def cached_tokenise(tokenizer: Any, records: Sequence[dict], max_length: int, options: MaskOptions,
                    workers: int = 1, cache: Path | None = None) -> list[RecordMasks]:
    """``tokenise_all``, read from ``cache`` (a folder) when it holds this exact input."""
    if cache is None:
        return tokenise_all(tokenizer, records, max_length, options, workers)
    path = Path(cache) / f"{cache_key(tokenizer, records, max_length, options)}.pkl"
    if path.is_file():
        try:
            with path.open("rb") as f:
                return pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError):
            pass  # a damaged cache file is tokenised afresh and rewritten
    results = tokenise_all(tokenizer, records, max_length, options, workers)
    from sftdata.io import atomic_path

    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                pickle.dump(results, f, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a cache that cannot be written only costs time
        pass
    return results
