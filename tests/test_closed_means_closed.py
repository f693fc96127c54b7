"""Closed means closed: a cache used on several event loops and closed leaves no socket open.

Each case runs in a fresh interpreter under ``-W error::ResourceWarning`` (a warning raised in a
``__del__`` is printed as "Exception ignored", so stderr must stay empty) and compares the
process's open file descriptors with the count before the cache existed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, os, sys
    import redis.asyncio  # imported before the baseline: its import opens nothing, but be sure
    from yokedcache import CacheConfig, YokedCache

    url, pipeline, close_on = sys.argv[1], sys.argv[2] == "on", sys.argv[3]

    def fds():
        return len(os.listdir("/proc/self/fd"))

    async def use(cache, close=False):
        await asyncio.gather(*(cache.set(f"k{i}", i) for i in range(50)))
        assert await asyncio.gather(*(cache.get(f"k{i}") for i in range(50))) == list(range(50))
        if close:
            await cache.close()

    baseline = fds()
    cache = YokedCache(CacheConfig(redis_url=url, auto_pipeline=pipeline, name="loops"))
    for n in range(3):
        asyncio.run(use(cache, close=close_on == "last loop" and n == 2))
    if close_on == "another loop":
        asyncio.run(cache.close())
    closed = fds()  # before any collection: closed by close(), not by the collector
    del cache
    gc.collect()
    print(baseline, closed, fds())
    """
)


@pytest.mark.parametrize("close_on", ["last loop", "another loop"])
@pytest.mark.parametrize("pipeline", ["on", "off"])
def test_a_cache_used_on_three_loops_and_closed_leaves_no_socket_open(redis_url, pipeline, close_on):
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-X", "dev", "-c", SCRIPT, redis_url, pipeline, close_on],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ResourceWarning" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    baseline, closed, collected = map(int, done.stdout.split())
    assert closed == collected == baseline, f"{closed - baseline} file descriptors left open"
