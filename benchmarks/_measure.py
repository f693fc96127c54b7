"""Tight-loop timing shared by the benchmark scripts (overhead.py, pipelining.py, record_cost.py).

They live here, not in ``yokedcache.bench``, because only the benchmarks use them: the installed
package keeps what ``yokedcache bench`` runs. Each script runs as ``python benchmarks/<name>.py``,
so this directory is on ``sys.path`` and ``from _measure import ...`` finds this module.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

__all__ = ["interleaved_medians", "interleaved_ratios", "per_op_loop", "run_on_redis"]


def per_op_loop(fn: Callable[[str], Awaitable[object]], keys: list[str],
                settle: Callable[[], object] | None = None) -> Callable[[int], Awaitable[float]]:  # fmt: skip
    """A tight loop of ``n`` calls (no per-call timing): the mean cost per call, for overhead ratios.

    ``settle`` runs inside the timed region after the calls: work the calls queued (a cache's
    deferred duration records) is paid for by the loop that caused it.
    """

    async def run(n: int) -> float:
        started = time.perf_counter()
        for i in range(n):
            await fn(keys[i % len(keys)])
        if settle is not None:
            settle()
        return (time.perf_counter() - started) / n

    return run


async def interleaved_medians(loops: dict[str, Callable[[int], Awaitable[float]]], rounds: int,
                              ops: int) -> dict[str, float]:  # fmt: skip
    """Median per-call cost of each loop over ``rounds`` interleaved rounds (drift hits all alike)."""
    samples = await _interleaved(loops, rounds, ops)
    return {name: statistics.median(values) for name, values in samples.items()}


async def interleaved_ratios(loops: dict[str, Callable[[int], Awaitable[float]]], baseline: str, rounds: int,
                             ops: int) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    """(median cost, median ratio to ``baseline``) per loop; each ratio compares runs of the same round,
    which cancels the slow drift of a shared machine better than a ratio of medians."""
    samples = await _interleaved(loops, rounds, ops)
    base = samples[baseline]
    costs = {name: statistics.median(values) for name, values in samples.items()}
    ratios = {name: statistics.median(v / b for v, b in zip(values, base, strict=True))
              for name, values in samples.items()}  # fmt: skip
    return costs, ratios


async def _interleaved(loops: dict[str, Callable[[int], Awaitable[float]]], rounds: int,
                       ops: int) -> dict[str, list[float]]:  # fmt: skip
    samples: dict[str, list[float]] = {name: [] for name in loops}
    for loop in loops.values():  # warm-up
        await loop(max(ops // 10, 100))
    for _ in range(rounds):
        for name, loop in loops.items():
            samples[name].append(await loop(ops))
    return samples


async def run_on_redis(doc: str | None, measure: Callable[[str, int, int], Awaitable[None]], *, rounds: int,
                       ops: int) -> None:  # fmt: skip
    """The command line of a script that times something against Redis: ``--redis-url`` (default: a
    private redis-server), ``--rounds``, ``--ops``; prints the machine, then runs ``measure``."""
    from yokedcache.bench import machine

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", help="Redis to use; default: start a private redis-server")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--ops", type=int, default=ops)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.redis_server import given_or_private_redis

    with given_or_private_redis(args.redis_url) as url:
        await measure(url, args.rounds, args.ops)
