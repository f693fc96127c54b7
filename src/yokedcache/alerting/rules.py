"""What an alert rule is written in: the metrics it may watch, its comparisons, its states.

Apart from the evaluator (``manager.py``) because none of this needs its threads or the cache:
it is the vocabulary ``add_alert`` checks a rule against and docs/operations.md lists, in one place.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .notifiers import Notifier

__all__ = ["ALERT_METRICS", "COMPARISONS", "FIRING", "INACTIVE", "PENDING", "RESOLVED", "AlertRule"]

#: What a rule can watch, and what each means.
ALERT_METRICS: dict[str, str] = {
    "hit_rate": "hits / (hits + misses) since start, 0-1 (no value before the first read)",
    "avg_response_time": "mean operation duration since start, seconds",
    "total_operations": "operations since start",
    "error_rate": "failed / all operations since start, 0-1",
    "p50_response_time": "median duration over the window, seconds",
    "p95_response_time": "95th percentile duration over the window, seconds",
    "p99_response_time": "99th percentile duration over the window, seconds",
    "operations_per_second": "operations per second over the window",
    "circuit_breaker_open": "1 while the breaker is open, else 0",
    "circuit_breaker_state": "0 closed, 1 half-open, 2 open",
    "redis_connected": "1 when Redis answers a ping within health_check_timeout, else 0",
    "pool_utilization": "connections in use / pool limit, 0-1",
    "memory_usage_ratio": "bytes held / CacheConfig.max_memory_bytes, 0-1",
    "eviction_rate": "keys evicted per second since the previous evaluation (memory backend)",
}

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "less_than": operator.lt, "<": operator.lt,
    "less_than_or_equal": operator.le, "<=": operator.le,
    "greater_than": operator.gt, ">": operator.gt,
    "greater_than_or_equal": operator.ge, ">=": operator.ge,
    "equal": operator.eq, "==": operator.eq,
    "not_equal": operator.ne, "!=": operator.ne,
}  # fmt: skip

INACTIVE, PENDING, FIRING, RESOLVED = "inactive", "pending", "firing", "resolved"


@dataclass
class AlertRule:
    name: str
    metric: str
    threshold: float
    comparison: str
    for_seconds: float = 0.0
    severity: str = "warning"
    description: str | None = None
    notifiers: list[Notifier] = field(default_factory=list)
    state: str = INACTIVE
    value: float | None = None
    pending_since: float | None = None
    firing_since: float | None = None

    def holds(self, value: float) -> bool:
        return COMPARISONS[self.comparison](value, self.threshold)
