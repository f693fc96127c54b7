"""redis-py's own OpenTelemetry (``redis[otel]``, redis-py >= 7.2 sync, 7.3 async), read, never set.

redis-py records metrics only (no spans) into the global ``MeterProvider``, once the application
called ``get_observability_instance().init(OTelConfig(...))``. Its COMMAND group times every
command that goes through a client's command path under ``db.client.operation.duration``; its
connection groups report ``db.client.connection.count`` (and ``.create_time``, ``.wait_time``,
``.timeouts``) for the pool. The auto-pipeliner writes its commands on connections of its own, so
COMMAND never sees them. ``docs/semconv.md`` says what the cache records beside it, and why.
"""

from __future__ import annotations

import sys

from .base import DriverTelemetry

#: Backend operations whose commands leave through the auto-pipeliner when it is on.
PIPELINED = frozenset({"get", "set", "delete", "exists", "get_many", "set_many"})
#: Every operation (each goes through redis-py's command path without the pipeliner).
OPERATIONS = PIPELINED | {"invalidate_pattern", "invalidate_tags", "clear"}


def metric_groups() -> frozenset[str]:
    """The names of redis-py's metric groups that are on (empty: not installed or not initialised)."""
    if "redis.observability.providers" not in sys.modules:
        # Nobody initialised it (init() needs that module), and importing it would import the SDK.
        return frozenset()
    try:
        from redis.observability.config import MetricGroup
        from redis.observability.providers import get_observability_instance
    except ImportError:  # pragma: no cover (imported already, see above)
        return frozenset()
    instance = get_observability_instance()
    manager = instance.get_provider_manager() if instance.is_enabled() else None
    if manager is None:
        return frozenset()
    groups = manager.config.metric_groups
    return frozenset(g.name for g in MetricGroup if g.name is not None and g in groups)


def driver_telemetry(pipelined: bool) -> DriverTelemetry:
    """What redis-py records for a backend's operations, with or without the auto-pipeliner."""
    groups = metric_groups()
    connections = bool(groups & {"CONNECTION_BASIC", "CONNECTION_ADVANCED"})
    if "COMMAND" not in groups:
        return DriverTelemetry(counts_connections=connections)
    if pipelined:
        return DriverTelemetry(timed=OPERATIONS - PIPELINED, unseen=PIPELINED, counts_connections=connections)
    return DriverTelemetry(timed=OPERATIONS, counts_connections=connections)
