"""``CacheConfig``: every setting in one validated dataclass.

Validation happens at construction so a typo fails at start-up with the field's name, not as
odd behaviour under load.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from ._urls import check_redis_url
from .serializers import Serializer

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = ["CacheConfig"]

_BACKEND_NAMES = ("memory", "redis")
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Longest accepted TTL: ~317 years (Redis keeps expiry times in milliseconds since the epoch).
MAX_TTL = 1e10


def _positive(name: str, value: object, *, allow_none: bool = False, integer: bool = False) -> None:
    if value is None and allow_none:
        return
    kind = "int" if integer else "number"
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{name}: expected an int{' or None' if allow_none else ''}, got {type(value).__name__}")
    if not _is_number(value):
        raise TypeError(f"{name}: expected a {kind}{' or None' if allow_none else ''}, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):  # type: ignore[arg-type]
        raise ValueError(f"{name}: must be a positive finite {kind}, got {value!r}")


def _boolean(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool{' or None' if allow_none else ''}, got {type(value).__name__}")


@dataclass
class CacheConfig:
    """Settings of one :class:`~yokedcache.YokedCache`.

    The backend is Redis when ``backend="redis"``, a ``RedisBackend`` instance, ``redis_url``
    or the ``YOKEDCACHE_REDIS_URL`` environment variable is given; otherwise the embedded
    in-memory backend, so the cache works with nothing else installed.
    """

    redis_url: str | None = None
    #: Tells this cache's metrics, spans and health apart from other caches' (``cache.name``).
    #: ``None``: the backend's kind ("memory", "redis"). Caches given the same name share series.
    name: str | None = None
    backend: str | Backend | None = None
    #: A :class:`yokedcache.monitoring.CacheMetrics`: record into its collectors.
    metrics: Any = None
    enable_metrics: bool = True
    #: ``None`` = on for Redis (CLIENT spans), off for the memory backend.
    enable_tracing: bool | None = None
    metrics_retention_days: float = 7
    key_prefix: str = "yokedcache:"
    #: Seconds; ``None`` = keys never expire unless a TTL is passed to ``set``.
    default_ttl: float | None = 300
    max_memory_bytes: int | None = 64 * 1024 * 1024
    max_keys: int | None = None
    max_connections: int = 50
    connect_timeout: float = 1.0
    operation_timeout: float = 1.0
    #: On backend failure return the default/False and count the error (True) or raise (False).
    fail_open: bool = True
    serializer: str | Serializer = "json"
    #: Put cache keys on spans (never on metrics). Off by default: keys can be personal data.
    capture_keys: bool = False
    meter_provider: Any = None
    tracer_provider: Any = None
    circuit_breaker_enabled: bool = True
    circuit_failure_threshold: int = 5
    circuit_recovery_timeout: float = 10.0
    #: Extra attempts for a transient error (0 = none); never made while the breaker is open.
    retry_attempts: int = 1
    retry_backoff: float = 0.02
    #: How often Redis key/byte figures for this cache's prefix are refreshed in the background
    #: (a bounded random sample, shared by every cache on that database: O(1) in the keyspace).
    stats_refresh_interval: float = 15.0
    #: Also count this prefix's keys exactly, by a full SCAN paced to ``stats_exact_cpu_budget``.
    stats_exact_keys: bool = False
    #: Share of one core (app and Redis each) the exact count may use: 0.01 = 1 %.
    stats_exact_cpu_budget: float = 0.01
    health_check_timeout: float = 1.0
    #: Also record ``db.client.operation.duration`` (stable database conventions) for Redis:
    #: one more histogram record per operation, so off by default (README "Telemetry reference").
    db_client_metrics: bool = False
    #: close() waits this long for operations in flight, then closes every connection anyway.
    close_timeout: float = 5.0
    #: Health says "degraded" while more than this share of the last minute's operations failed.
    degraded_error_rate: float = 0.05

    def __post_init__(self) -> None:
        if self.redis_url is not None:
            check_redis_url(self.redis_url, "redis_url")
        if self.name is not None:
            if not isinstance(self.name, str):
                raise TypeError(f"name: expected a str, got {type(self.name).__name__}")
            if not _NAME.fullmatch(self.name):
                raise ValueError(
                    f"name: 1-64 letters, digits or . _ - : (a fixed label, never data), got {self.name!r}"
                )
        if self.backend is not None:
            if isinstance(self.backend, str):
                if self.backend not in _BACKEND_NAMES:
                    raise ValueError(f"backend: expected 'memory', 'redis' or a Backend instance, got {self.backend!r}")
            else:
                from .backends.base import Backend

                if not isinstance(self.backend, Backend):
                    raise TypeError(
                        f"backend: expected 'memory', 'redis' or a Backend instance, got {type(self.backend).__name__}"
                    )
        if self.backend == "memory" and self.redis_url is not None:
            raise ValueError("backend: 'memory' conflicts with redis_url; give one or the other")
        if self.metrics is not None:
            from .monitoring.metrics import CacheMetrics

            if not isinstance(self.metrics, CacheMetrics):
                raise TypeError(f"metrics: expected a CacheMetrics, got {type(self.metrics).__name__}")
        for name in ("enable_metrics", "fail_open", "capture_keys", "circuit_breaker_enabled", "stats_exact_keys",
                     "db_client_metrics"):  # fmt: skip
            _boolean(name, getattr(self, name))
        _boolean("enable_tracing", self.enable_tracing, allow_none=True)
        _positive("metrics_retention_days", self.metrics_retention_days)
        if not isinstance(self.key_prefix, str):
            raise TypeError(f"key_prefix: expected a str, got {type(self.key_prefix).__name__}")
        if any(ch in self.key_prefix for ch in "\r\n\x00"):
            raise ValueError("key_prefix: must not contain NUL or newline characters")
        _positive("default_ttl", self.default_ttl, allow_none=True)
        if self.default_ttl is not None and self.default_ttl > MAX_TTL:
            raise ValueError(f"default_ttl: must be at most {MAX_TTL:.0e} seconds, got {self.default_ttl!r}")
        _positive("max_memory_bytes", self.max_memory_bytes, allow_none=True, integer=True)
        _positive("max_keys", self.max_keys, allow_none=True, integer=True)
        _positive("max_connections", self.max_connections, integer=True)
        for name in (
            "connect_timeout",
            "operation_timeout",
            "circuit_recovery_timeout",
            "stats_refresh_interval",
            "health_check_timeout",
            "close_timeout",
        ):
            _positive(name, getattr(self, name))
        if not _is_number(self.degraded_error_rate):
            raise TypeError(f"degraded_error_rate: expected a number, got {type(self.degraded_error_rate).__name__}")
        if not 0 < self.degraded_error_rate <= 1:
            raise ValueError(f"degraded_error_rate: must be in (0, 1], got {self.degraded_error_rate!r}")
        # A wrong object here would only fail at the first operation, far from the typo.
        for name, method in (("meter_provider", "get_meter"), ("tracer_provider", "get_tracer")):
            value = getattr(self, name)
            if value is not None and not callable(getattr(value, method, None)):
                raise TypeError(f"{name}: expected an OpenTelemetry {name.replace('_', ' ')} "
                                f"(with .{method}()), got {type(value).__name__}")  # fmt: skip
        _positive("circuit_failure_threshold", self.circuit_failure_threshold, integer=True)
        _positive("stats_exact_cpu_budget", self.stats_exact_cpu_budget)
        if self.stats_exact_cpu_budget > 1:
            budget = self.stats_exact_cpu_budget
            raise ValueError(f"stats_exact_cpu_budget: must be at most 1 (one core), got {budget!r}")
        if isinstance(self.retry_attempts, bool) or not isinstance(self.retry_attempts, int):
            raise TypeError(f"retry_attempts: expected an int, got {type(self.retry_attempts).__name__}")
        if not 0 <= self.retry_attempts <= 10:
            raise ValueError(f"retry_attempts: must be between 0 and 10, got {self.retry_attempts}")
        if not _is_number(self.retry_backoff):
            raise TypeError(f"retry_backoff: expected a number, got {type(self.retry_backoff).__name__}")
        if not (math.isfinite(self.retry_backoff) and 0 <= self.retry_backoff <= 10):
            raise ValueError(f"retry_backoff: must be between 0 and 10 seconds, got {self.retry_backoff!r}")
        if not isinstance(self.serializer, (str, Serializer)):
            raise TypeError(
                f"serializer: expected 'json', 'pickle' or a Serializer, got {type(self.serializer).__name__}"
            )
        if isinstance(self.serializer, str) and self.serializer not in ("json", "pickle"):
            raise ValueError(f"serializer: expected 'json' or 'pickle', got {self.serializer!r}")

    def resolved_redis_url(self) -> str | None:
        """The Redis URL this config selects, or ``None`` for the memory backend."""
        if self.backend == "memory" or (self.backend is not None and not isinstance(self.backend, str)):
            return None
        if self.redis_url is not None:
            return self.redis_url
        env = os.environ.get("YOKEDCACHE_REDIS_URL")
        if env:
            return check_redis_url(env, "YOKEDCACHE_REDIS_URL")
        if self.backend == "redis":
            return "redis://localhost:6379/0"
        return None

    def __repr__(self) -> str:
        # dataclass' repr would print redis_url verbatim, password included.
        from ._urls import redact_url

        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "redis_url" and value is not None:
                value = redact_url(value)
            parts.append(f"{f.name}={value!r}")
        return f"CacheConfig({', '.join(parts)})"
