"""Connecting to Ray: the cluster at ``RAY_ADDRESS`` (``ray start --head`` made it), or a
local one started for this process and stopped when it exits.

Ray is an optional extra (``pip install 'sftdata[ray]'``), pinned to one release: the
driver and every node must run the same Ray and the same sftdata (the hashes the dedup
steps shuffle on are polars' and numpy's, stable within one version of each).

Settings, by environment: ``RAY_ADDRESS`` (``host:port`` of the head, or ``auto``);
``SFTDATA_RAY_CPUS`` (CPUs of a local cluster; default every core this process may use);
``SFTDATA_RAY_OBJECT_STORE_MB`` (its shared-memory object store; default Ray's 30% of
memory). A cluster's token (``~/.ray/auth_token`` or ``RAY_AUTH_TOKEN``) is sent when
present.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path

from sftdata.errors import UserError
from sftdata.machine import cores

RAY_VERSION = "2.60.0"  # the release the ``ray`` extra pins


def connect(log=None):
    """The ``ray`` module, initialised (once per process)."""
    if os.environ.get("RAY_ADDRESS"):
        _use_token(os.environ)  # read when Ray is imported: before the import
    try:
        import ray
    except ImportError:
        raise UserError("engine ray needs Ray: pip install 'sftdata[ray]'") from None
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING, "configure_logging": True}
        if address:
            try:
                ray.init(address=address, **quiet)
            except ConnectionError as exc:
                raise UserError(f"cannot reach the Ray cluster at RAY_ADDRESS={address}: {exc}") from None
            where = f"the Ray cluster at {address}"
        else:
            store = os.environ.get("SFTDATA_RAY_OBJECT_STORE_MB")
            ray.init(address="local", num_cpus=int(os.environ.get("SFTDATA_RAY_CPUS") or cores()), include_dashboard=False,
                     object_store_memory=int(store) * 2**20 if store else None, **quiet)
            where = "a local Ray cluster"
        if log is not None:
            log(f"engine ray: {where}, {int(cpus(ray))} CPUs (Ray {ray.__version__})")
    _quiet_data(ray)
    return ray


def _use_token(env) -> None:
    """Ray 2.60 clusters require a token (``~/.ray/auth_token``, made by ``ray start
    --head``), but a driver given an explicit address only sends it when token mode is
    on: turn it on when a token is there and the user has not chosen a mode."""
    has_token = env.get("RAY_AUTH_TOKEN") or env.get("RAY_AUTH_TOKEN_PATH") or \
        (Path.home() / ".ray" / "auth_token").is_file()
    if "RAY_AUTH_MODE" not in env and has_token:
        env["RAY_AUTH_MODE"] = "token"


def cpus(ray) -> int:
    return max(int(ray.cluster_resources().get("CPU", 1)), 1)


def _quiet_data(ray) -> None:
    """Ray Data: keep block order (the output order equals the local engine's), no
    progress bars or per-dataset log lines on the user's terminal."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


@cache
def _remote_of(fn):
    import ray

    return ray.remote(fn)


def remote(ray, fn, **options):
    """``ray.remote(fn)``, made once per function (re-exporting it per call costs time)."""
    task = _remote_of(fn)
    return task.options(**options) if options else task
