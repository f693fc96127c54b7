"""Rates over a sliding window, computed from cumulative counters.

A bounded buffer of recent operations cannot give a rate: at 5,000 ops/s a 2,048-entry buffer
covers 0.4 s, and dividing it by a 60 s window under-reports 150-fold. Counters are exact, so
this keeps a few timestamped readings of them (taken whenever someone asks, at most one per
``resolution`` seconds, none older than ``horizon``) and divides differences by elapsed time.
Memory is bounded by ``horizon / resolution`` readings, whatever the traffic.

The same readings draw the status page's charts (:meth:`CounterWindow.history`): the
difference between two consecutive readings is the true average over that interval, so a gap
(nobody asked for a while) shows as one longer interval, never as a wrong value.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["CounterWindow"]

Reading = tuple[float, tuple[int, ...]]


class CounterWindow:
    """Differences of cumulative counters over the last ``window`` seconds (or since start).

    Safe to use from several threads (the event loop, the HTTP server's, an alert thread): a
    lock keeps the readings in time order.
    """

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
        self._lock = threading.Lock()
        start = clock()
        self._samples: deque[Reading] = deque([(start, tuple(0 for _ in read()))], maxlen=int(horizon / resolution) + 2)

    @property
    def max_readings(self) -> int:
        """The most readings ever kept (the memory bound)."""
        return self._samples.maxlen or 0

    def _sample(self) -> Reading:
        now, values = self._clock(), self._read()
        samples = self._samples
        if now - samples[-1][0] >= self._resolution:
            samples.append((now, values))
            while len(samples) > 2 and now - samples[1][0] >= self._horizon:
                samples.popleft()
        return now, values

    def sample(self) -> Reading:
        """Take a reading now (kept if the last kept one is ``resolution`` old); return it."""
        with self._lock:
            return self._sample()

    def delta(self, window: float) -> tuple[float, tuple[int, ...]]:
        """``(elapsed seconds, counter differences)`` over about the last ``window`` seconds.

        The base is the newest kept reading at least ``window`` old, or the oldest one (the
        cache's start) when none is: the elapsed time returned is always the true one.
        """
        with self._lock:
            now, values = self._sample()
            base_t, base = self._samples[0]
            for t, v in reversed(self._samples):
                if now - t >= window:
                    base_t, base = t, v
                    break
        return now - base_t, tuple(a - b for a, b in zip(values, base, strict=True))

    def history(self, seconds: float) -> list[Reading]:
        """Kept readings of the last ``seconds``, oldest first, plus the one just before them
        (the base of the first interval). Takes no reading itself."""
        with self._lock:
            samples = list(self._samples)
        now = self._clock()
        first = len(samples) - 1
        while first > 0 and now - samples[first - 1][0] <= seconds:
            first -= 1
        return samples[max(first - 1, 0) :]
