"""A closed cache's counts stay in the series it summed into: an exported counter never goes back.

Caches sharing a name sum into one series; when one closes, ``telemetry/observers.py`` keeps its
counts. The counters checked here are the ones the observers register, found by watching them
register (not from a list), so a counter added later is checked too: the workload below must
give it a value, or the test names the counter it left at zero.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from yokedcache import CacheConfig, YokedCache
from yokedcache.telemetry import semconv as sc
from yokedcache.telemetry.counters import CacheCounters
from yokedcache.telemetry.observers import ObservedCaches

from .redis_server import free_port


class _RecordingMeter:
    """Stands in for a meter to learn which observable instruments the observers create."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}

    def create_observable_counter(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.kinds[name] = "counter"

    def create_observable_gauge(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.kinds[name] = "gauge"

    def create_observable_up_down_counter(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.kinds[name] = "up_down_counter"

    def create_histogram(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.kinds[name] = "histogram"


def _observable_counters() -> set[str]:
    meter = _RecordingMeter()
    ObservedCaches(meter)  # type: ignore[arg-type]
    return {name for name, kind in meter.kinds.items() if kind == "counter"}


def _series(telemetry: Any, name: str) -> dict[tuple[str, tuple[tuple[str, Any], ...]], float]:
    """``{(instrument, other attributes): value}`` of the monotonic sums for cache ``name``."""
    found = {}
    data = telemetry.reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if not getattr(metric.data, "is_monotonic", False):
                    continue
                for point in metric.data.data_points:
                    attrs = dict(point.attributes or {})
                    if attrs.pop(sc.CACHE_NAME, None) == name:
                        found[(metric.name, tuple(sorted(attrs.items())))] = point.value
    return found


def test_every_integer_count_of_a_cache_is_a_declared_count():
    counters = CacheCounters()
    integers = {slot for slot in CacheCounters.__slots__ if type(getattr(counters, slot)) is int}
    assert integers == set(CacheCounters.COUNTS), "list a new count in CacheCounters.COUNTS"


def test_the_observers_register_the_counters_of_the_metric_contract():
    assert _observable_counters() >= {sc.GETS, sc.HITS, sc.MISSES, sc.SETS, sc.DELETES, sc.INVALIDATIONS, sc.ERRORS,
                                      sc.EVICTIONS, sc.CANCELLATIONS, sc.BREAKER_OPENS}  # fmt: skip


@pytest.mark.timeout(60)
async def test_every_counter_keeps_the_counts_of_caches_that_closed(redis_url, telemetry):
    mp, name = telemetry.meter_provider, "retiring"
    hung = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    hung.setblocking(False)  # accepted on the event loop
    memory = YokedCache(CacheConfig(name=name, meter_provider=mp, max_keys=2))
    failing = YokedCache(CacheConfig(name=name, meter_provider=mp, redis_url=f"redis://127.0.0.1:{free_port()}/0",
                                     retry_attempts=0, circuit_failure_threshold=1))  # fmt: skip
    stuck = YokedCache(CacheConfig(name=name, meter_provider=mp, redis_url=f"redis://127.0.0.1:{hung.getsockname()[1]}/0",
                                   operation_timeout=30, connect_timeout=30))  # fmt: skip
    try:
        await memory.set("a", 1, tags=["t"])
        await memory.get("a")  # a hit
        await memory.get("missing")  # a miss
        await memory.set("b", 2)
        await memory.set("c", 3)  # max_keys=2: an eviction
        await memory.delete("b")
        await memory.invalidate_tags(["t"])
        await failing.get("x")  # an error, and the breaker opens (threshold 1)
        waiting = asyncio.create_task(stuck.get("y"))
        # The get is in flight once a connection (its own, or that of the usage refresh it starts
        # first) reached the hung socket and sent its handshake (HELLO), whose reply never comes.
        loop = asyncio.get_running_loop()
        accepted, _ = await asyncio.wait_for(loop.sock_accept(hung), 10)
        with accepted:
            accepted.setblocking(False)
            assert await asyncio.wait_for(loop.sock_recv(accepted, 4096), 10)
            assert not waiting.done()
            waiting.cancel()  # a cancellation
            with pytest.raises(asyncio.CancelledError):
                await waiting

        before = _series(telemetry, name)
        reported = {instrument for instrument, _ in before}
        for counter in sorted(_observable_counters()):
            assert counter in reported, f"the workload gives {counter} no value: extend it"
        assert all(value > 0 for value in before.values()), before
    finally:
        for cache in (memory, failing, stuck):
            await cache.close()
        hung.close()

    after = _series(telemetry, name)
    assert after == before, "a counter dropped when its caches closed"
