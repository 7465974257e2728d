"""The Self-Instruct loop: bootstrap -> filter -> classify -> instances -> record.

``Run`` drives ``concurrency`` asyncio workers over one backend. A worker turns a
pending instruction into a record (classification request, then an instance request,
output-first for classification tasks and input-first otherwise), or, when none is
pending, asks for new instructions (a bootstrap request showing sampled seed and
generated tasks). New instructions pass the cheap filters and the ROUGE-L index before
they join the pool and the pending queue. Workers stop starting work once the output
holds ``num`` records or the request budget is spent, so a weak model cannot loop
forever. Every rejected candidate goes to the rejects file with its reason.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass, field

from sftdata.convert.reference import canonical_record
from sftdata.errors import RecordError
from sftdata.formats import alpaca
from sftdata.generate import filters, parse
from sftdata.generate.backends import BackendError, Completion, EndpointDown
from sftdata.generate.config import GenerateConfig
from sftdata.generate.prompts import Prompts
from sftdata.generate.rouge import Match, RougeIndex
from sftdata.generate.seeds import SeedTask
from sftdata.generate.state import RunFiles
from sftdata.records import record_id
from sftdata.rejects import make_reject

SOURCE = "self_instruct"
# Similarities down to this are found exactly and kept in records' meta.
MATCH_FLOOR = 0.5


@dataclass
class Pending:
    """An instruction that passed the filters, waiting for its instance."""

    instruction: str
    bootstrap: Completion
    match: Match | None


@dataclass
class Counters:
    accepted: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    classify_unparsed: int = 0
    surplus: int = 0


class Run:
    """One generation run over an opened backend and opened run files."""

    def __init__(self, cfg: GenerateConfig, backend, prompts: Prompts, seeds: list[SeedTask],
                 files: RunFiles, on_event=None):
        self.cfg, self.backend, self.prompts, self.files = cfg, backend, prompts, files
        self.on_event = on_event or (lambda run: None)
        self.prefill = getattr(backend, "supports_prefix", False)
        # A backend that answers one request at a time (the embedded model) gets one worker:
        # more would only queue requests whose answers arrive after the goal is met.
        self.workers = min(cfg.concurrency, getattr(backend, "max_in_flight", None) or cfg.concurrency)
        self.seed_instructions = [s.instruction for s in seeds]
        self.blocklist = filters.blocklist_pattern(cfg.blocklist)
        self.index = RougeIndex(floor=min(MATCH_FLOOR, cfg.rouge_threshold),
                                texts=self.seed_instructions)
        self.generated: list[str] = []
        self.ids: set[str] = set()
        for record in files.records:
            self.ids.add(record["id"])
            instruction = (record.get("meta") or {}).get("instruction")
            if instruction:
                self.generated.append(instruction)
                self.index.add(instruction)
        self.count = Counters(accepted=len(files.records), rejects=dict(files.previous_rejects))
        self.totals = files.totals
        self._earlier_retries = dict(self.totals.retries)
        self.rng = random.Random(f"{cfg.seed}:{len(files.records)}:{self.totals.runs}")
        self.pending: deque[Pending] = deque()
        self.in_flight = 0
        self.bootstrapping = 0
        self.budget = self.totals.requests + cfg.effective_max_requests()
        self._changed = asyncio.Event()
        self.started = time.monotonic()
        # Group commit: records and rejects are queued and written (fsync per batch) by
        # one flusher task in a thread, so the event loop never blocks on the disk.
        self._out_queue: list[dict] = []
        self._rej_queue: list[dict] = []
        self._flusher: asyncio.Task | None = None
        self.written = self.count.accepted

    # -- orchestration ----------------------------------------------------------------
    def done(self) -> bool:
        return self.count.accepted >= self.cfg.num or self.totals.requests >= self.budget

    def _notify(self) -> None:
        self.totals.retries = self.retries()
        self._changed.set()
        self._changed = asyncio.Event()
        self.on_event(self)

    async def run(self) -> None:
        self.totals.runs += 1
        workers = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            if self._flusher is not None:
                await self._flusher
            await self._flush()
            self.files.save_state(self.written)

    def _schedule_flush(self) -> None:
        if self._flusher is not None and self._flusher.done() and not self._flusher.cancelled():
            failure = self._flusher.exception()
            if failure is not None:  # the disk refused a write (full, read-only): stop the run
                raise failure
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Write queued rejects and records in order, then the state file."""
        while self._out_queue or self._rej_queue:
            out, rej = self._out_queue, self._rej_queue
            self._out_queue, self._rej_queue = [], []
            if rej:
                await asyncio.to_thread(self.files.rej.append, rej)
            if out:
                await asyncio.to_thread(self.files.out.append, out)
                self.written += len(out)
                await asyncio.to_thread(self.files.save_state, self.written)

    async def _worker(self) -> None:
        num, new_per = self.cfg.num, self.cfg.resolved("num_new_per_request")
        while not self.done():
            claimed = self.count.accepted + self.in_flight
            if self.pending and claimed < num:
                task = self.pending.popleft()
                self.in_flight += 1
                try:
                    await self._make_record(task)
                finally:
                    self.in_flight -= 1
                    self._notify()
            elif claimed + len(self.pending) + self.bootstrapping * new_per < num + self.workers \
                    and not (self.pending and claimed >= num):
                self.bootstrapping += 1
                try:
                    await self._bootstrap()
                finally:
                    self.bootstrapping -= 1
                    self._notify()
            else:
                await self._changed.wait()

    # -- requests and rejects ---------------------------------------------------------
    async def _request(self, stage: str, prompt: str, max_tokens: int, temperature: float,
                       stop: list[str] | None = None, prefix: str = "") -> Completion | None:
        if self.totals.requests >= self.budget:
            return None
        self.totals.requests += 1
        kwargs = {"prefix": prefix} if self.prefill and prefix else {}
        try:
            completion = await self.backend.complete(
                [{"role": "user", "content": prompt}], max_tokens=max_tokens,
                temperature=temperature, top_p=self.cfg.top_p if temperature > 0 else 1.0,
                stop=stop, **kwargs)
        except BackendError as exc:
            self._reject(exc.reason, stage, {"prompt_chars": len(prompt)})
            return None
        except EndpointDown as exc:  # the run stops; the request that showed it is still counted
            if exc.reason:
                self._reject(exc.reason, stage, {"prompt_chars": len(prompt)})
            raise
        self.totals.prompt_tokens += completion.prompt_tokens
        self.totals.completion_tokens += completion.completion_tokens
        return completion

    def _reject(self, reason: str, stage: str, record, detail: dict | None = None) -> None:
        self.count.rejects[reason] = self.count.rejects.get(reason, 0) + 1
        self._rej_queue.append(make_reject(source=SOURCE, stage=f"generate:{stage}", reason=reason,
                                           record=record, detail=detail))
        self._schedule_flush()

    # -- stage 1 and 2: bootstrap and filters ----------------------------------------
    async def _bootstrap(self) -> None:
        cfg = self.cfg
        k_seed = min(cfg.resolved("num_seed_examples"), len(self.seed_instructions))
        k_gen = min(cfg.resolved("num_generated_examples"), len(self.generated))
        examples = self.rng.sample(self.seed_instructions, k_seed) + self.rng.sample(self.generated, k_gen)
        self.rng.shuffle(examples)
        prompt = self.prompts.render("bootstrap", examples=examples,
                                     num_new=cfg.resolved("num_new_per_request"))
        completion = await self._request(
            "bootstrap", prompt, cfg.resolved("bootstrap_max_tokens"), cfg.temperature,
            stop=["\n\n"] if self.prefill else None, prefix=f"{len(examples) + 1}.")
        if completion is None:
            return
        items = parse.parse_instructions(completion.text, completion.finish_reason == "length")
        if not items:
            self._reject("no_instructions_parsed", "bootstrap", completion.text)
        for item in items:
            reason = filters.instruction_reason(item, cfg.min_words, cfg.max_words, self.blocklist)
            if reason:
                self._reject(reason, "filter", {"instruction": item})
                continue
            accepted, match = self.index.check_and_add(item, cfg.rouge_threshold)
            if not accepted:
                self._reject("too_similar", "filter", {"instruction": item},
                             {"most_similar": match.text, "rouge_l": round(match.score, 4)})
                continue
            self.generated.append(item)
            self.pending.append(Pending(item, completion, match))

    # -- stages 3 to 5: classify, instances, record -----------------------------------
    async def _make_record(self, task: Pending) -> None:
        cfg, instruction = self.cfg, task.instruction
        classify = await self._request("classify", self.prompts.render("classify", instruction=instruction),
                                       max_tokens=3, temperature=0.0, prefix="Classification:")
        if classify is None:
            return
        answer = parse.parse_yes_no(classify.text.replace("Classification:", " "))
        if answer is None:
            self.count.classify_unparsed += 1
        output_first = bool(answer)
        key = "output_first" if output_first else "input_first"
        instances = await self._request(
            "instances", self.prompts.render(key, instruction=instruction),
            cfg.resolved("instance_max_tokens"), 0.0, stop=["\nTask:"],
            prefix="Class label:" if output_first else "Input:")
        if instances is None:
            return
        parsed = parse.parse_instances(instances.text, output_first, instances.finish_reason == "length")
        bad = {"instruction": instruction, "completion": instances.text}
        if not parsed:
            self._reject("unparsed_instance", "instances", bad)
            return
        if filters.conflicting_instances(parsed):
            self._reject("conflicting_outputs", "instances", bad)
            return
        for input_text, output in parsed:
            reason = filters.instance_reason(input_text, output)
            if reason is None:
                self._write(task, input_text, output, output_first, classify, instances)
                return
        self._reject(reason, "instances", bad)

    def _write(self, task: Pending, input_text: str, output: str, is_classification: bool,
               classify: Completion, instances: Completion) -> None:
        try:  # the Alpaca rule (instruction + "\n" + input) makes the record, as on read
            converted = alpaca.to_canonical({"instruction": task.instruction, "input": input_text,
                                             "output": output})
        except RecordError as exc:
            self._reject(exc.reason, "record", {"instruction": task.instruction})
            return
        messages = converted["messages"]
        rid = record_id(messages)
        if rid in self.ids:
            self._reject("duplicate_record", "record", {"instruction": task.instruction})
            return
        if self.count.accepted >= self.cfg.num:
            self.count.surplus += 1
            return
        usage = {stage: {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens}
                 for stage, c in (("bootstrap", task.bootstrap), ("classify", classify),
                                  ("instances", instances))}
        meta = {
            "instruction": task.instruction, "input": input_text,
            "is_classification": is_classification,
            "backend": self.backend.name, "model": self.backend.model,
            "request_ids": {"bootstrap": task.bootstrap.request_id,
                            "classify": classify.request_id, "instances": instances.request_id},
            "rouge_l_max": round(task.match.score, 4) if task.match else None,
            "rouge_l_most_similar": task.match.text if task.match else None,
            "rouge_l_floor": self.index.floor,
            "usage": usage,
        }
        self._out_queue.append(canonical_record({**converted, "meta": meta}, SOURCE))
        self._schedule_flush()
        self.ids.add(rid)
        self.count.accepted += 1

    def retries(self) -> dict[str, int]:
        """Retries by cause over this and earlier runs of the same output."""
        merged = dict(self._earlier_retries)
        for cause, n in self.backend.stats.retries.items():
            merged[cause] = merged.get(cause, 0) + n
        return merged
