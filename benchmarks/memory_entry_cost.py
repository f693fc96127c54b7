"""Measure what one MemoryBackend entry really costs, to check the constants in backends/memory.py.

For N small entries set into a fresh backend, tracemalloc's traced growth minus the key and
value lengths, divided by N, is the per-entry overhead. Run for several N: the dict's tables
grow in steps, so the figure moves within a band.

    python benchmarks/memory_entry_cost.py
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

from yokedcache.backends import MemoryBackend
from yokedcache.backends.memory import ENTRY_OVERHEAD, EXPIRY_OVERHEAD, TAG_MEMBERSHIP_OVERHEAD


async def overhead(n: int, ttl: float | None, tags: tuple[str, ...]) -> float:
    backend = MemoryBackend()
    await backend.set("warm-up", b"x", ttl, tags)  # the tag's member set exists before measuring
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    payload = 0
    for i in range(n):
        key, value = f"yokedcache:{i:06d}", str(i).encode()
        payload += len(key) + len(value)
        await backend.set(key, value, ttl, tags)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before - payload) / n


async def main() -> None:
    print(f"constants: ENTRY_OVERHEAD={ENTRY_OVERHEAD} EXPIRY_OVERHEAD={EXPIRY_OVERHEAD} "
          f"TAG_MEMBERSHIP_OVERHEAD={TAG_MEMBERSHIP_OVERHEAD} (+ sys.getsizeof(frozenset of tags))")  # fmt: skip
    print(f"{'N':>8} {'no TTL':>8} {'TTL':>8} {'TTL+1 tag':>10} {'TTL+2 tags':>11}")
    for n in (1_000, 10_000, 22_000, 44_000, 88_000, 176_000, 300_000):
        row = [await overhead(n, ttl, tags) for ttl, tags in ((None, ()), (300.0, ()), (300.0, ("t1",)),
                                                               (300.0, ("t1", "t2")))]  # fmt: skip
        print(f"{n:>8} {row[0]:>8.0f} {row[1]:>8.0f} {row[2]:>10.0f} {row[3]:>11.0f}")


if __name__ == "__main__":
    asyncio.run(main())
