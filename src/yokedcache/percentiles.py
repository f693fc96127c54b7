"""The one percentile formula: health's p50/p95/p99, the status page's latency table, the demo's live view and
the benchmarks.

Nearest rank, no interpolation: every figure reported is a duration that was really measured,
and the places that report percentiles agree to the digit on the same samples.
"""

from __future__ import annotations

import math

__all__ = ["percentile"]


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < ``q`` <= 1) of ``sorted_values``, sorted ascending;
    0.0 for no values (an idle cache has no latency, and a health field must hold a number)."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]
