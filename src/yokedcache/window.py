"""Rates over a sliding window, computed from cumulative counters.

A bounded buffer of recent operations cannot give a rate: at 5,000 ops/s a 2,048-entry buffer
covers 0.4 s, and dividing it by a 60 s window under-reports 150-fold. Counters are exact, so
this keeps a few timestamped readings of them (taken whenever someone asks, at most one per
``resolution`` seconds, none older than ``horizon``) and divides differences by elapsed time.
Memory is bounded by ``horizon / resolution`` readings, whatever the traffic.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["CounterWindow"]


class CounterWindow:
    """Differences of cumulative counters over the last ``window`` seconds (or since start)."""

    def __init__(
        self,
        read: Callable[[], tuple[int, ...]],
        *,
        horizon: float = 600.0,
        resolution: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._clock = clock
        self._resolution = resolution
        self._horizon = horizon
        start = clock()
        self._samples: deque[tuple[float, tuple[int, ...]]] = deque(
            [(start, tuple(0 for _ in read()))], maxlen=int(horizon / resolution) + 2
        )

    def sample(self) -> tuple[float, tuple[int, ...]]:
        """Take a reading now (kept if the last kept one is ``resolution`` old); return it."""
        now, values = self._clock(), self._read()
        samples = self._samples
        if now - samples[-1][0] >= self._resolution:
            samples.append((now, values))
            while len(samples) > 2 and now - samples[1][0] >= self._horizon:
                samples.popleft()
        return now, values

    def delta(self, window: float) -> tuple[float, tuple[int, ...]]:
        """``(elapsed seconds, counter differences)`` over about the last ``window`` seconds.

        The base is the newest kept reading at least ``window`` old, or the oldest one (the
        cache's start) when none is: the elapsed time returned is always the true one.
        """
        now, values = self.sample()
        base_t, base = self._samples[0]
        for t, v in reversed(self._samples):
            if now - t >= window:
                base_t, base = t, v
                break
        return now - base_t, tuple(a - b for a, b in zip(values, base, strict=True))
