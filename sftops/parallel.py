"""Chunked parallel map over the rows of a large table (worker processes, one per core).

Used by ingest and clean for their per-row work; small tables stay in-process.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import partial
from itertools import repeat
from typing import Any

PARALLEL_MIN_ROWS = 50_000  # smaller tables are cleaned in-process
CHUNK_ROWS = 20_000


def _worker_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def row_pool(n_rows: int) -> Iterator[ProcessPoolExecutor | None]:
    """Worker processes (one per core) for a table of ``n_rows`` rows; None when it is small.

    Workers are spawned, not forked: rensa and lingua run Rust thread pools, which a forked
    child inherits in a broken state (it would wait forever on them).
    """
    workers = min(_worker_count(), -(-n_rows // CHUNK_ROWS))
    if n_rows < PARALLEL_MIN_ROWS or workers < 2:
        yield None
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a block of per-row work: its rows, token sets and
    lists never form cycles, and the collector would only rescan them again and again (about
    15% of clean's CPU time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _without_gc(fn: Callable[..., Any], *args: Any) -> Any:
    with gc_paused():
        return fn(*args)


def map_row_chunks(
    pool: ProcessPoolExecutor | None,
    fn: Callable[..., Any],
    columns: dict[str, list[Any]],
    *args: Any,
) -> list[Any]:
    """``fn(columns of a chunk of CHUNK_ROWS rows, *args)`` for consecutive chunks, in order,
    in the pool's worker processes (here when ``pool`` is None)."""
    n = len(next(iter(columns.values()), []))
    chunks = (
        {k: v[start : start + CHUNK_ROWS] for k, v in columns.items()}
        for start in range(0, n, CHUNK_ROWS)
    )
    if pool is None:
        with gc_paused():
            return [fn(chunk, *args) for chunk in chunks]
    return list(pool.map(partial(_without_gc, fn), chunks, *(repeat(a) for a in args)))
