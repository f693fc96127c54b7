"""``CacheConfig``: every setting in one validated dataclass.

Validation happens at construction so a typo fails at start-up with the field's name, not as
odd behaviour under load.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from . import validation
from ._urls import DEFAULT_REDIS_URL, REDIS_URL_ENV, env_redis_url, redact_url
from .backends.near_cache import NearCacheConfig
from .serializers import Serializer

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = ["CacheConfig", "MetricsSource"]

_BACKEND_NAMES = ("memory", "redis")
_FLAGS = ("enable_metrics", "fail_open", "capture_keys", "circuit_breaker_enabled", "stats_exact_keys",
          "db_client_metrics", "auto_pipeline", "lock")  # fmt: skip
_SECONDS = ("connect_timeout", "operation_timeout", "circuit_recovery_timeout", "stats_refresh_interval",
            "health_check_timeout", "close_timeout", "lock_ttl", "lock_wait")  # fmt: skip

#: Longest accepted TTL: ~317 years (Redis keeps expiry times in milliseconds since the epoch).
MAX_TTL = 1e10


def _positive(name: str, value: object, *, allow_none: bool = False, integer: bool = False) -> None:
    kind = "int" if integer else "number"
    validation.number(name, value, rule=f"must be a positive finite {kind}",
                      kind=f"{'an int' if integer else 'a number'}{' or None' if allow_none else ''}",
                      integer=integer, minimum=0, allow_zero=False, finite=True, allow_none=allow_none)  # fmt: skip


@runtime_checkable
class MetricsSource(Protocol):
    """What the cache uses of ``CacheConfig.metrics``: the providers to record into.

    :class:`yokedcache.monitoring.CacheMetrics` is one. Declared here rather than importing it:
    the monitoring package sits above this module and imports it.
    """

    meter_provider: Any
    tracer_provider: Any


@dataclass(frozen=True)
class CacheConfig:
    """Settings of one :class:`~yokedcache.YokedCache`.

    Frozen: every value was checked in ``__post_init__``, and an assignment afterwards
    (``cfg.name = "<img>"``) would slip past the checks into labels. To change a setting, make a
    new config with :func:`dataclasses.replace`, which validates again.

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
    metrics: MetricsSource | None = None
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
    #: Redis: also record the stable database conventions' ``db.client.operation.duration``, from
    #: the same measurement and in the same batched flush as our duration (docs/semconv.md).
    #: False leaves it out, e.g. to let redis-py's own OTel (its COMMAND group) report it.
    db_client_metrics: bool = True
    #: close() waits this long for operations in flight, then closes every connection anyway.
    close_timeout: float = 5.0
    #: Health says "degraded" while more than this share of the last minute's operations failed.
    degraded_error_rate: float = 0.05
    #: Redis backends: commands issued in the same event-loop tick share one pipelined round trip
    #: (a lone command still goes out at once). See docs/performance.md.
    auto_pipeline: bool = True
    #: get_or_set / @cached default: on a miss, take a per-key lock in the backend first, so one
    #: caller computes per key across every process sharing the Redis (docs/cache-aside.md).
    lock: bool = False
    #: Seconds a lock lives: it expires by itself if its holder dies, so set it above the
    #: slowest computation.
    lock_ttl: float = 10.0
    #: Seconds a caller waits for another's lock before computing for itself (never a deadlock).
    lock_wait: float = 10.0
    #: Keep hot values in process memory, invalidated by Redis (``CLIENT TRACKING``): a
    #: :class:`~yokedcache.NearCacheConfig`, ``True`` for its defaults, or ``None`` (off).
    #: Redis and Sentinel only; see docs/near-cache.md.
    near_cache: NearCacheConfig | bool | None = None

    def __post_init__(self) -> None:
        # The order of the checks is the order of the errors a config with several mistakes
        # raises first; it is kept as it always was.
        self._check_target()
        for name in _FLAGS:
            validation.boolean(name, getattr(self, name))
        validation.boolean("enable_tracing", self.enable_tracing, allow_none=True)
        _positive("metrics_retention_days", self.metrics_retention_days)
        validation.string("key_prefix", self.key_prefix)
        if any(ch in self.key_prefix for ch in "\r\n\x00"):
            raise ValueError("key_prefix: must not contain NUL or newline characters")
        self._check_limits()
        self._check_providers()
        self._check_resilience()
        self._check_serializer()
        self._check_near_cache()

    def _check_near_cache(self) -> None:
        # frozen: the one normalisation (True/False to a config or None) happens here, once
        if self.near_cache is True:
            object.__setattr__(self, "near_cache", NearCacheConfig())
        elif self.near_cache is False:
            object.__setattr__(self, "near_cache", None)
        elif self.near_cache is not None and not isinstance(self.near_cache, NearCacheConfig):
            kind = type(self.near_cache).__name__
            raise TypeError(f"near_cache: expected a NearCacheConfig, True or None, got {kind}")
        if self.near_cache is not None and self.backend == "memory":
            raise ValueError("near_cache: needs a Redis backend (the memory backend is in-process already)")

    def _check_target(self) -> None:
        """Where the data goes and what reads it: URL, name, backend, metrics."""
        if self.redis_url is not None:
            validation.redis_url("redis_url", self.redis_url)
        if self.name is not None:
            validation.cache_name("name", self.name)
        self._check_backend()
        if self.metrics is not None and not isinstance(self.metrics, MetricsSource):
            raise TypeError(f"metrics: expected a CacheMetrics, got {type(self.metrics).__name__}")

    def _check_backend(self) -> None:
        if isinstance(self.backend, str) and self.backend not in _BACKEND_NAMES:
            shown = validation.quoted(self.backend)
            raise ValueError(f"backend: expected 'memory', 'redis' or a Backend instance, got {shown}")
        if self.backend is not None and not isinstance(self.backend, str):
            from .backends.base import Backend

            if not isinstance(self.backend, Backend):
                raise TypeError(
                    f"backend: expected 'memory', 'redis' or a Backend instance, got {type(self.backend).__name__}"
                )
        if self.backend == "memory" and self.redis_url is not None:
            raise ValueError("backend: 'memory' conflicts with redis_url; give one or the other")

    def _check_limits(self) -> None:
        _positive("default_ttl", self.default_ttl, allow_none=True)
        validation.number("default_ttl", self.default_ttl, rule=f"must be at most {MAX_TTL:.0e} seconds",
                          maximum=MAX_TTL, allow_none=True)  # fmt: skip
        _positive("max_memory_bytes", self.max_memory_bytes, allow_none=True, integer=True)
        _positive("max_keys", self.max_keys, allow_none=True, integer=True)
        _positive("max_connections", self.max_connections, integer=True)
        for name in _SECONDS:
            _positive(name, getattr(self, name))
        validation.number("degraded_error_rate", self.degraded_error_rate, rule="must be in (0, 1]", kind="a number",
                          minimum=0, maximum=1, allow_zero=False)  # fmt: skip

    def _check_providers(self) -> None:
        # A wrong object here would only fail at the first operation, far from the typo.
        for name, method in (("meter_provider", "get_meter"), ("tracer_provider", "get_tracer")):
            value = getattr(self, name)
            if value is not None and not callable(getattr(value, method, None)):
                raise TypeError(f"{name}: expected an OpenTelemetry {name.replace('_', ' ')} "
                                f"(with .{method}()), got {type(value).__name__}")  # fmt: skip

    def _check_resilience(self) -> None:
        _positive("circuit_failure_threshold", self.circuit_failure_threshold, integer=True)
        _positive("stats_exact_cpu_budget", self.stats_exact_cpu_budget)
        validation.number("stats_exact_cpu_budget", self.stats_exact_cpu_budget,
                          rule="must be at most 1 (one core)", maximum=1)  # fmt: skip
        validation.number("retry_attempts", self.retry_attempts, rule="must be between 0 and 10", kind="an int",
                          integer=True, minimum=0, maximum=10)  # fmt: skip
        validation.number("retry_backoff", self.retry_backoff, rule="must be between 0 and 10 seconds",
                          kind="a number", minimum=0, maximum=10, finite=True)  # fmt: skip

    def _check_serializer(self) -> None:
        if not isinstance(self.serializer, (str, Serializer)):
            raise TypeError(
                f"serializer: expected 'json', 'pickle' or a Serializer, got {type(self.serializer).__name__}"
            )
        if isinstance(self.serializer, str) and self.serializer not in ("json", "pickle"):
            raise ValueError(f"serializer: expected 'json' or 'pickle', got {validation.quoted(self.serializer)}")

    def resolved_redis_url(self) -> str | None:
        """The Redis URL this config selects, or ``None`` for the memory backend."""
        if self.backend == "memory" or (self.backend is not None and not isinstance(self.backend, str)):
            return None
        if self.redis_url is not None:
            return self.redis_url
        env = env_redis_url()
        if env is not None:
            return validation.redis_url(REDIS_URL_ENV, env)
        if self.backend == "redis":
            return DEFAULT_REDIS_URL
        return None

    def __repr__(self) -> str:
        # dataclass' repr would print redis_url verbatim, password included.
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "redis_url" and value is not None:
                value = redact_url(value)
            parts.append(f"{f.name}={value!r}")
        return f"CacheConfig({', '.join(parts)})"
