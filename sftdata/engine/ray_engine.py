"""The Ray engine: each stage's work spread over a Ray cluster, with the local result.

How each kind of stage runs (the frame a stage gets is cut into Arrow blocks in Ray's
object store, ``blocks``):

- a row-local step (filters, decontamination, any ``Step`` with ``row_local``) is one
  ``ray.data`` ``map_batches`` over the blocks: each worker gets the step once (put in
  the object store: decontamination's eval n-gram index is built once on the driver and
  broadcast), runs it on its blocks, and returns the kept rows and the rejected rows
  with their reasons. Blocks keep their order, so the kept rows and the rejects come
  back in the local order.
- exact and near dedup are shuffles (``sftdata.engine.ray_dedup``).
- a step that must see every row at once (select, semantic dedup, the model scores)
  runs on the driver, as locally.
- the mix reads its file sources in parallel Ray tasks, then draws by the same seeded
  plan (``plan_mix``: exact counts per source) as the local mix.

The report of each stage is made by the step's own ``report`` from the same rows, so
only ``seconds`` differs from a local run.
"""

from __future__ import annotations

import time
import numpy as np
import polars as pl

from sftdata.engine.ray_cluster import connect, cpus, remote
from sftdata.steps.base import DETAIL, REASON, GlobalStep, Step, StepResult

BLOCK_ROWS = 50_000  # rows per object-store block: a few tens of MB of records
_REJECTED = "__rejected"


class RayEngine:
    name = "ray"

    def __init__(self, log=None):
        self._log = log
        self._ray = None
        self.stats: dict[str, dict] = {}  # what the shuffles moved, per step (summary.json)

    def note(self, step: str, **figures) -> None:
        self.stats[step] = figures

    @property
    def ray(self):
        """The ``ray`` module, connected on first use (a run whose stages are all cached
        never starts a cluster)."""
        if self._ray is None:
            self._ray = connect(self._log)
            self.cpus = cpus(self._ray)
        return self._ray

    # -- blocks ---------------------------------------------------------------------
    def bounds(self, rows: int) -> list[tuple[int, int]]:
        """(start, stop) of each block: at least two per CPU, at most BLOCK_ROWS rows."""
        self.ray  # noqa: B018 - connects, so that ``cpus`` is known
        count = min(max(2 * self.cpus, -(-rows // BLOCK_ROWS)), max(rows, 1))
        cuts = np.linspace(0, rows, count + 1).astype(np.int64).tolist()
        return list(zip(cuts[:-1], cuts[1:]))

    def blocks(self, frame: pl.DataFrame) -> list[tuple[int, object]]:
        """(first row, object ref of its Arrow table) per block. Sliced in polars: an
        Arrow slice would carry (and serialise) the whole frame's buffers."""
        return [(start, self.ray.put(frame.slice(start, stop - start).to_arrow()))
                for start, stop in self.bounds(frame.height)]

    # -- stages ---------------------------------------------------------------------
    def run_step(self, step: Step, frame: pl.DataFrame) -> StepResult:
        from sftdata.steps.dedup import ExactDedup, NearDedup

        start = time.perf_counter()
        if isinstance(step, (ExactDedup, NearDedup)) and frame.height:
            from sftdata.engine import ray_dedup

            decide = ray_dedup.exact if isinstance(step, ExactDedup) else ray_dedup.near
            dup_of, sims = decide(self, step.params, frame)
            step.reset()
            step.adopt(dup_of, sims)
            step.give_ids(frame["id"].gather(step.wants_ids()).to_list())
            kept, rejected, keep = step.split(frame, 0)
        elif step.row_local and not isinstance(step, GlobalStep) and frame.height:
            kept, rejected = self._map_batches(step, frame)
            keep = None
        else:
            return step(frame)
        return StepResult(kept=kept, rejected=rejected, keep=keep,
                          report=step.report(frame.height, kept.height, rejected, start))

    def _map_batches(self, step: Step, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        import pyarrow as pa

        self.ray  # noqa: B018 - connect before importing ray.data (it reads the settings)
        import ray.data

        step.prepare()  # e.g. the eval n-gram index: built once here, shipped with the step
        refs = [ref for _, ref in self.blocks(frame)]
        ds = ray.data.from_arrow_refs(refs).map_batches(
            _run_step_on_batch, batch_format="pyarrow", batch_size=None, fn_args=(self.ray.put(step),))
        tables = self.ray.get(ds.to_arrow_refs())
        out = pl.from_arrow(pa.concat_tables(tables, promote_options="default")) if tables else None
        if out is None or out.height == 0:
            empty = frame.clear()
            return empty, empty.with_columns(pl.lit(None, pl.String).alias(REASON), pl.lit(None, pl.String).alias(DETAIL))
        rejected = out[_REJECTED]
        kept = out.filter(~rejected).drop(REASON, DETAIL, _REJECTED)
        return kept.select(frame.columns), out.filter(rejected).drop(_REJECTED)

    def run_mix(self, params, base_dir, main):
        from sftdata.steps.mix_recipe import run_mix

        return run_mix(params, base_dir=base_dir, main=main, read_all=self._read_all)

    def _read_all(self, jobs: list[tuple]) -> list:
        """``read_canonical(*job)`` for every job, in parallel Ray tasks, in order."""
        task = remote(self.ray, _read_file)
        return self.ray.get([task.remote(*job) for job in jobs])


# -- what runs on the workers -------------------------------------------------------------
def _run_step_on_batch(batch, step):
    """One block through one step: the kept rows, then the rejected rows (with reason and
    detail), flagged by ``__rejected``."""
    import ray

    if isinstance(step, ray.ObjectRef):
        step = ray.get(step)
    frame = pl.from_arrow(batch)
    result = step(frame)
    kept = result.kept.with_columns(pl.lit(None, pl.String).alias(REASON),
                                    pl.lit(None, pl.String).alias(DETAIL), pl.lit(False).alias(_REJECTED))
    rejected = result.rejected.with_columns(pl.lit(True).alias(_REJECTED))
    return pl.concat([kept, rejected.select(kept.columns)], how="vertical_relaxed").to_arrow()


def _read_file(path, fmt, source):
    from sftdata.convert import read_canonical

    return read_canonical(path, fmt=fmt, source=source)
