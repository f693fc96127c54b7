"""Every setting's error keeps its exact type and text across refactors.

The texts were produced by the hand-written checks before ``yokedcache.validation`` replaced
them (src/yokedcache/validation.py): users and other tests match on these messages, so any
change here is a visible change of behaviour, never a tidy-up.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from yokedcache import CacheConfig, YokedCache, validation
from yokedcache.backends import MemoryBackend
from yokedcache.backends.redis import RedisBackend
from yokedcache.exporters.statsd import StatsDSink
from yokedcache.instrumentor import YokedCacheInstrumentor
from yokedcache.monitoring import CacheMetrics, StatsDCollector
from yokedcache.monitoring.alerts import AlertManager
from yokedcache.monitoring.http import MetricsServer
from yokedcache.monitoring.notifiers import SMTPSettings
from yokedcache.monitoring.otlp import OTLPCollector
from yokedcache.percentiles import percentile

NAN, INF = float("nan"), float("inf")
NOWHERE = "redis://localhost:1/0"  # never connected: every check runs before any I/O


def _alert(field: str, value: Any) -> Any:
    manager = AlertManager(YokedCache())
    args = {"name": "a", "metric": "hit_rate", "threshold": 1, "comparison": "<", field: value}
    return manager.add_alert(**args)


#: How each site is called with one bad setting.
SITES: dict[str, Callable[[str, Any], Any]] = {
    "CacheConfig": lambda f, v: CacheConfig(**{f: v}),
    "StatsDSink": lambda f, v: StatsDSink(**{f: v}),
    "StatsDCollector": lambda f, v: StatsDCollector(**{f: v}),
    "OTLPCollector": lambda f, v: OTLPCollector(**{f: v}),
    "MetricsServer": lambda f, v: MetricsServer(**{"port": 0, f: v}),
    "SMTPSettings": lambda f, v: SMTPSettings(**{"host": "h", f: v}),
    "CacheMetrics": lambda f, v: CacheMetrics(**{f: v}),
    "metrics.increment": lambda f, v: CacheMetrics().increment("x", v),
    "metrics.gauge": lambda f, v: CacheMetrics().gauge("x", v),
    "metrics.timing": lambda f, v: CacheMetrics().timing("x", v),
    "metrics.shutdown": lambda f, v: CacheMetrics().shutdown(v),
    "AlertManager": lambda f, v: AlertManager(YokedCache(), **{f: v}),
    "add_alert": _alert,
    "MemoryBackend": lambda f, v: MemoryBackend(**{f: v}),
    "RedisBackend": lambda f, v: RedisBackend(NOWHERE, **{f: v}),
    "cache.set": lambda f, v: YokedCache().set("k", 1, **{f: v}),
    "count_keys": lambda f, v: RedisBackend(NOWHERE).count_keys("*", **{f: v}),
    "instrument": lambda f, v: YokedCacheInstrumentor()._instrument(**{f: v}),
}

CASES = [
    ("CacheConfig", "auto_pipeline", "1", TypeError, "auto_pipeline: expected a bool, got str"),
    ("CacheConfig", "backend", -1, TypeError, "backend: expected 'memory', 'redis' or a Backend instance, got int"),
    ("CacheConfig", "capture_keys", "1", TypeError, "capture_keys: expected a bool, got str"),
    ("CacheConfig", "circuit_breaker_enabled", "1", TypeError, "circuit_breaker_enabled: expected a bool, got str"),
    (
        "CacheConfig",
        "circuit_failure_threshold",
        True,
        TypeError,
        "circuit_failure_threshold: expected an int, got bool",
    ),
    ("CacheConfig", "circuit_failure_threshold", "1", TypeError, "circuit_failure_threshold: expected an int, got str"),
    (
        "CacheConfig",
        "circuit_failure_threshold",
        -1,
        ValueError,
        "circuit_failure_threshold: must be a positive finite int, got -1",
    ),
    (
        "CacheConfig",
        "circuit_recovery_timeout",
        True,
        TypeError,
        "circuit_recovery_timeout: expected a number, got bool",
    ),
    ("CacheConfig", "circuit_recovery_timeout", "1", TypeError, "circuit_recovery_timeout: expected a number, got str"),
    (
        "CacheConfig",
        "circuit_recovery_timeout",
        -1,
        ValueError,
        "circuit_recovery_timeout: must be a positive finite number, got -1",
    ),
    (
        "CacheConfig",
        "circuit_recovery_timeout",
        NAN,
        ValueError,
        "circuit_recovery_timeout: must be a positive finite number, got nan",
    ),
    (
        "CacheConfig",
        "circuit_recovery_timeout",
        INF,
        ValueError,
        "circuit_recovery_timeout: must be a positive finite number, got inf",
    ),
    ("CacheConfig", "close_timeout", True, TypeError, "close_timeout: expected a number, got bool"),
    ("CacheConfig", "close_timeout", "1", TypeError, "close_timeout: expected a number, got str"),
    ("CacheConfig", "close_timeout", -1, ValueError, "close_timeout: must be a positive finite number, got -1"),
    ("CacheConfig", "close_timeout", NAN, ValueError, "close_timeout: must be a positive finite number, got nan"),
    ("CacheConfig", "close_timeout", INF, ValueError, "close_timeout: must be a positive finite number, got inf"),
    ("CacheConfig", "connect_timeout", True, TypeError, "connect_timeout: expected a number, got bool"),
    ("CacheConfig", "connect_timeout", "1", TypeError, "connect_timeout: expected a number, got str"),
    ("CacheConfig", "connect_timeout", -1, ValueError, "connect_timeout: must be a positive finite number, got -1"),
    ("CacheConfig", "connect_timeout", NAN, ValueError, "connect_timeout: must be a positive finite number, got nan"),
    ("CacheConfig", "connect_timeout", INF, ValueError, "connect_timeout: must be a positive finite number, got inf"),
    ("CacheConfig", "db_client_metrics", "1", TypeError, "db_client_metrics: expected a bool, got str"),
    ("CacheConfig", "default_ttl", True, TypeError, "default_ttl: expected a number or None, got bool"),
    ("CacheConfig", "default_ttl", "1", TypeError, "default_ttl: expected a number or None, got str"),
    ("CacheConfig", "default_ttl", -1, ValueError, "default_ttl: must be a positive finite number, got -1"),
    ("CacheConfig", "default_ttl", NAN, ValueError, "default_ttl: must be a positive finite number, got nan"),
    ("CacheConfig", "default_ttl", INF, ValueError, "default_ttl: must be a positive finite number, got inf"),
    ("CacheConfig", "degraded_error_rate", True, TypeError, "degraded_error_rate: expected a number, got bool"),
    ("CacheConfig", "degraded_error_rate", "1", TypeError, "degraded_error_rate: expected a number, got str"),
    ("CacheConfig", "degraded_error_rate", -1, ValueError, "degraded_error_rate: must be in (0, 1], got -1"),
    ("CacheConfig", "degraded_error_rate", NAN, ValueError, "degraded_error_rate: must be in (0, 1], got nan"),
    ("CacheConfig", "degraded_error_rate", INF, ValueError, "degraded_error_rate: must be in (0, 1], got inf"),
    ("CacheConfig", "enable_metrics", "1", TypeError, "enable_metrics: expected a bool, got str"),
    ("CacheConfig", "enable_tracing", "1", TypeError, "enable_tracing: expected a bool or None, got str"),
    ("CacheConfig", "fail_open", "1", TypeError, "fail_open: expected a bool, got str"),
    ("CacheConfig", "health_check_timeout", True, TypeError, "health_check_timeout: expected a number, got bool"),
    ("CacheConfig", "health_check_timeout", "1", TypeError, "health_check_timeout: expected a number, got str"),
    (
        "CacheConfig",
        "health_check_timeout",
        -1,
        ValueError,
        "health_check_timeout: must be a positive finite number, got -1",
    ),
    (
        "CacheConfig",
        "health_check_timeout",
        NAN,
        ValueError,
        "health_check_timeout: must be a positive finite number, got nan",
    ),
    (
        "CacheConfig",
        "health_check_timeout",
        INF,
        ValueError,
        "health_check_timeout: must be a positive finite number, got inf",
    ),
    ("CacheConfig", "key_prefix", -1, TypeError, "key_prefix: expected a str, got int"),
    ("CacheConfig", "max_connections", True, TypeError, "max_connections: expected an int, got bool"),
    ("CacheConfig", "max_connections", "1", TypeError, "max_connections: expected an int, got str"),
    ("CacheConfig", "max_connections", -1, ValueError, "max_connections: must be a positive finite int, got -1"),
    ("CacheConfig", "max_keys", True, TypeError, "max_keys: expected an int or None, got bool"),
    ("CacheConfig", "max_keys", "1", TypeError, "max_keys: expected an int or None, got str"),
    ("CacheConfig", "max_keys", -1, ValueError, "max_keys: must be a positive finite int, got -1"),
    ("CacheConfig", "max_memory_bytes", True, TypeError, "max_memory_bytes: expected an int or None, got bool"),
    ("CacheConfig", "max_memory_bytes", "1", TypeError, "max_memory_bytes: expected an int or None, got str"),
    ("CacheConfig", "max_memory_bytes", -1, ValueError, "max_memory_bytes: must be a positive finite int, got -1"),
    (
        "CacheConfig",
        "meter_provider",
        -1,
        TypeError,
        "meter_provider: expected an OpenTelemetry meter provider (with .get_meter()), got int",
    ),
    ("CacheConfig", "metrics", -1, TypeError, "metrics: expected a CacheMetrics, got int"),
    ("CacheConfig", "metrics_retention_days", True, TypeError, "metrics_retention_days: expected a number, got bool"),
    ("CacheConfig", "metrics_retention_days", "1", TypeError, "metrics_retention_days: expected a number, got str"),
    (
        "CacheConfig",
        "metrics_retention_days",
        -1,
        ValueError,
        "metrics_retention_days: must be a positive finite number, got -1",
    ),
    (
        "CacheConfig",
        "metrics_retention_days",
        NAN,
        ValueError,
        "metrics_retention_days: must be a positive finite number, got nan",
    ),
    (
        "CacheConfig",
        "metrics_retention_days",
        INF,
        ValueError,
        "metrics_retention_days: must be a positive finite number, got inf",
    ),
    ("CacheConfig", "name", -1, TypeError, "name: expected a str, got int"),
    ("CacheConfig", "operation_timeout", True, TypeError, "operation_timeout: expected a number, got bool"),
    ("CacheConfig", "operation_timeout", "1", TypeError, "operation_timeout: expected a number, got str"),
    ("CacheConfig", "operation_timeout", -1, ValueError, "operation_timeout: must be a positive finite number, got -1"),
    (
        "CacheConfig",
        "operation_timeout",
        NAN,
        ValueError,
        "operation_timeout: must be a positive finite number, got nan",
    ),
    (
        "CacheConfig",
        "operation_timeout",
        INF,
        ValueError,
        "operation_timeout: must be a positive finite number, got inf",
    ),
    ("CacheConfig", "redis_url", -1, TypeError, "redis_url: expected a str, got int"),
    ("CacheConfig", "retry_attempts", True, TypeError, "retry_attempts: expected an int, got bool"),
    ("CacheConfig", "retry_attempts", "1", TypeError, "retry_attempts: expected an int, got str"),
    ("CacheConfig", "retry_attempts", -1, ValueError, "retry_attempts: must be between 0 and 10, got -1"),
    ("CacheConfig", "retry_backoff", True, TypeError, "retry_backoff: expected a number, got bool"),
    ("CacheConfig", "retry_backoff", "1", TypeError, "retry_backoff: expected a number, got str"),
    ("CacheConfig", "retry_backoff", -1, ValueError, "retry_backoff: must be between 0 and 10 seconds, got -1"),
    ("CacheConfig", "retry_backoff", NAN, ValueError, "retry_backoff: must be between 0 and 10 seconds, got nan"),
    ("CacheConfig", "retry_backoff", INF, ValueError, "retry_backoff: must be between 0 and 10 seconds, got inf"),
    ("CacheConfig", "serializer", -1, TypeError, "serializer: expected 'json', 'pickle' or a Serializer, got int"),
    ("CacheConfig", "stats_exact_cpu_budget", True, TypeError, "stats_exact_cpu_budget: expected a number, got bool"),
    ("CacheConfig", "stats_exact_cpu_budget", "1", TypeError, "stats_exact_cpu_budget: expected a number, got str"),
    (
        "CacheConfig",
        "stats_exact_cpu_budget",
        -1,
        ValueError,
        "stats_exact_cpu_budget: must be a positive finite number, got -1",
    ),
    (
        "CacheConfig",
        "stats_exact_cpu_budget",
        NAN,
        ValueError,
        "stats_exact_cpu_budget: must be a positive finite number, got nan",
    ),
    (
        "CacheConfig",
        "stats_exact_cpu_budget",
        INF,
        ValueError,
        "stats_exact_cpu_budget: must be a positive finite number, got inf",
    ),
    (
        "CacheConfig",
        "stats_exact_cpu_budget",
        1.5,
        ValueError,
        "stats_exact_cpu_budget: must be at most 1 (one core), got 1.5",
    ),
    ("CacheConfig", "stats_exact_keys", "1", TypeError, "stats_exact_keys: expected a bool, got str"),
    ("CacheConfig", "stats_refresh_interval", True, TypeError, "stats_refresh_interval: expected a number, got bool"),
    ("CacheConfig", "stats_refresh_interval", "1", TypeError, "stats_refresh_interval: expected a number, got str"),
    (
        "CacheConfig",
        "stats_refresh_interval",
        -1,
        ValueError,
        "stats_refresh_interval: must be a positive finite number, got -1",
    ),
    (
        "CacheConfig",
        "stats_refresh_interval",
        NAN,
        ValueError,
        "stats_refresh_interval: must be a positive finite number, got nan",
    ),
    (
        "CacheConfig",
        "stats_refresh_interval",
        INF,
        ValueError,
        "stats_refresh_interval: must be a positive finite number, got inf",
    ),
    (
        "CacheConfig",
        "tracer_provider",
        -1,
        TypeError,
        "tracer_provider: expected an OpenTelemetry tracer provider (with .get_tracer()), got int",
    ),
    ("StatsDSink", "host", True, TypeError, "host: expected a non-empty str, got True"),
    ("StatsDSink", "host", -1, TypeError, "host: expected a non-empty str, got -1"),
    ("StatsDSink", "host", NAN, TypeError, "host: expected a non-empty str, got nan"),
    ("StatsDSink", "host", INF, TypeError, "host: expected a non-empty str, got inf"),
    ("StatsDSink", "max_samples", True, ValueError, "max_samples: expected an int between 1 and 10000, got True"),
    ("StatsDSink", "max_samples", "1", ValueError, "max_samples: expected an int between 1 and 10000, got '1'"),
    ("StatsDSink", "max_samples", NAN, ValueError, "max_samples: expected an int between 1 and 10000, got nan"),
    ("StatsDSink", "max_samples", INF, ValueError, "max_samples: expected an int between 1 and 10000, got inf"),
    ("StatsDSink", "max_udp_size", True, ValueError, "max_udp_size: expected an int between 64 and 65000, got True"),
    ("StatsDSink", "max_udp_size", "1", ValueError, "max_udp_size: expected an int between 64 and 65000, got '1'"),
    ("StatsDSink", "max_udp_size", NAN, ValueError, "max_udp_size: expected an int between 64 and 65000, got nan"),
    ("StatsDSink", "max_udp_size", INF, ValueError, "max_udp_size: expected an int between 64 and 65000, got inf"),
    ("StatsDSink", "port", True, ValueError, "port: expected an int between 1 and 65535, got True"),
    ("StatsDSink", "port", "1", ValueError, "port: expected an int between 1 and 65535, got '1'"),
    ("StatsDSink", "port", NAN, ValueError, "port: expected an int between 1 and 65535, got nan"),
    ("StatsDSink", "port", INF, ValueError, "port: expected an int between 1 and 65535, got inf"),
    ("StatsDSink", "prefix", True, TypeError, "prefix: expected a str or None, got bool"),
    ("StatsDSink", "prefix", -1, TypeError, "prefix: expected a str or None, got int"),
    ("StatsDSink", "sample_rate", True, ValueError, "sample_rate: expected a number in (0, 1], got True"),
    ("StatsDSink", "sample_rate", "1", ValueError, "sample_rate: expected a number in (0, 1], got '1'"),
    ("StatsDSink", "sample_rate", NAN, ValueError, "sample_rate: expected a number in (0, 1], got nan"),
    ("StatsDSink", "sample_rate", INF, ValueError, "sample_rate: expected a number in (0, 1], got inf"),
    ("StatsDSink", "timeout", True, ValueError, "timeout: expected a positive number of seconds, got True"),
    ("StatsDSink", "timeout", "1", ValueError, "timeout: expected a positive number of seconds, got '1'"),
    ("StatsDSink", "timeout", NAN, ValueError, "timeout: expected a positive number of seconds, got nan"),
    ("StatsDSink", "use_tags", "1", TypeError, "use_tags: expected a bool, got str"),
    (
        "StatsDCollector",
        "flush_interval",
        True,
        ValueError,
        "flush_interval: expected a positive, finite number of seconds, got True",
    ),
    (
        "StatsDCollector",
        "flush_interval",
        "1",
        ValueError,
        "flush_interval: expected a positive, finite number of seconds, got '1'",
    ),
    (
        "StatsDCollector",
        "flush_interval",
        NAN,
        ValueError,
        "flush_interval: expected a positive, finite number of seconds, got nan",
    ),
    (
        "StatsDCollector",
        "flush_interval",
        INF,
        ValueError,
        "flush_interval: expected a positive, finite number of seconds, got inf",
    ),
    (
        "OTLPCollector",
        "export_interval",
        True,
        ValueError,
        "export_interval: expected a positive number of seconds, got True",
    ),
    (
        "OTLPCollector",
        "export_interval",
        "1",
        ValueError,
        "export_interval: expected a positive number of seconds, got '1'",
    ),
    ("OTLPCollector", "protocol", True, ValueError, "protocol: expected one of ('grpc', 'http/protobuf'), got True"),
    ("OTLPCollector", "protocol", "1", ValueError, "protocol: expected one of ('grpc', 'http/protobuf'), got '1'"),
    ("OTLPCollector", "protocol", NAN, ValueError, "protocol: expected one of ('grpc', 'http/protobuf'), got nan"),
    ("OTLPCollector", "protocol", INF, ValueError, "protocol: expected one of ('grpc', 'http/protobuf'), got inf"),
    ("MetricsServer", "port", True, ValueError, "port: expected an int between 0 and 65535, got True"),
    ("MetricsServer", "port", "1", ValueError, "port: expected an int between 0 and 65535, got '1'"),
    ("MetricsServer", "port", NAN, ValueError, "port: expected an int between 0 and 65535, got nan"),
    ("MetricsServer", "port", INF, ValueError, "port: expected an int between 0 and 65535, got inf"),
    (
        "MetricsServer",
        "request_timeout",
        True,
        ValueError,
        "request_timeout: expected a positive number of seconds, got True",
    ),
    (
        "MetricsServer",
        "request_timeout",
        "1",
        ValueError,
        "request_timeout: expected a positive number of seconds, got '1'",
    ),
    (
        "MetricsServer",
        "request_timeout",
        NAN,
        ValueError,
        "request_timeout: expected a positive number of seconds, got nan",
    ),
    (
        "MetricsServer",
        "request_timeout",
        INF,
        ValueError,
        "request_timeout: expected a positive number of seconds, got inf",
    ),
    ("SMTPSettings", "port", True, ValueError, "smtp port: expected 1-65535, got True"),
    ("SMTPSettings", "port", "1", ValueError, "smtp port: expected 1-65535, got '1'"),
    ("SMTPSettings", "port", NAN, ValueError, "smtp port: expected 1-65535, got nan"),
    ("SMTPSettings", "port", INF, ValueError, "smtp port: expected 1-65535, got inf"),
    ("CacheMetrics", "shutdown_timeout", True, TypeError, "shutdown_timeout: expected a number of seconds, got bool"),
    ("CacheMetrics", "shutdown_timeout", "1", TypeError, "shutdown_timeout: expected a number of seconds, got str"),
    (
        "CacheMetrics",
        "shutdown_timeout",
        -1,
        ValueError,
        "shutdown_timeout: expected a positive, finite number of seconds, got -1",
    ),
    (
        "CacheMetrics",
        "shutdown_timeout",
        NAN,
        ValueError,
        "shutdown_timeout: expected a positive, finite number of seconds, got nan",
    ),
    (
        "CacheMetrics",
        "shutdown_timeout",
        INF,
        ValueError,
        "shutdown_timeout: expected a positive, finite number of seconds, got inf",
    ),
    ("metrics.increment", "value", True, TypeError, "value: expected a number, got bool"),
    ("metrics.increment", "value", "1", TypeError, "value: expected a number, got str"),
    ("metrics.increment", "value", -1, ValueError, "value: a counter only increases, got -1"),
    ("metrics.gauge", "value", True, TypeError, "value: expected a number, got bool"),
    ("metrics.gauge", "value", "1", TypeError, "value: expected a number, got str"),
    ("metrics.timing", "value", True, TypeError, "value: expected a number, got bool"),
    ("metrics.timing", "value", "1", TypeError, "value: expected a number, got str"),
    ("metrics.timing", "value", -1, ValueError, "value: a duration cannot be negative, got -1"),
    ("metrics.shutdown", "timeout", True, TypeError, "timeout: expected a number of seconds, got bool"),
    ("metrics.shutdown", "timeout", "1", TypeError, "timeout: expected a number of seconds, got str"),
    ("metrics.shutdown", "timeout", -1, ValueError, "timeout: expected a positive, finite number of seconds, got -1"),
    ("metrics.shutdown", "timeout", NAN, ValueError, "timeout: expected a positive, finite number of seconds, got nan"),
    ("metrics.shutdown", "timeout", INF, ValueError, "timeout: expected a positive, finite number of seconds, got inf"),
    ("AlertManager", "interval", True, TypeError, "interval: expected a finite number, got True"),
    ("AlertManager", "interval", "1", TypeError, "interval: expected a finite number, got '1'"),
    ("AlertManager", "interval", -1, ValueError, "interval: must be >= 0.01, got -1"),
    ("AlertManager", "interval", NAN, TypeError, "interval: expected a finite number, got nan"),
    ("AlertManager", "interval", INF, TypeError, "interval: expected a finite number, got inf"),
    ("AlertManager", "shutdown_timeout", True, TypeError, "shutdown_timeout: expected a finite number, got True"),
    ("AlertManager", "shutdown_timeout", "1", TypeError, "shutdown_timeout: expected a finite number, got '1'"),
    ("AlertManager", "shutdown_timeout", -1, ValueError, "shutdown_timeout: must be >= 0, got -1"),
    ("AlertManager", "shutdown_timeout", NAN, TypeError, "shutdown_timeout: expected a finite number, got nan"),
    ("AlertManager", "shutdown_timeout", INF, TypeError, "shutdown_timeout: expected a finite number, got inf"),
    ("AlertManager", "webhook_retries", True, ValueError, "webhook_retries: expected an int >= 0, got True"),
    ("AlertManager", "webhook_retries", "1", ValueError, "webhook_retries: expected an int >= 0, got '1'"),
    ("AlertManager", "webhook_retries", NAN, ValueError, "webhook_retries: expected an int >= 0, got nan"),
    ("AlertManager", "webhook_retries", INF, ValueError, "webhook_retries: expected an int >= 0, got inf"),
    ("AlertManager", "webhook_timeout", True, TypeError, "webhook_timeout: expected a finite number, got True"),
    ("AlertManager", "webhook_timeout", "1", TypeError, "webhook_timeout: expected a finite number, got '1'"),
    ("AlertManager", "webhook_timeout", -1, ValueError, "webhook_timeout: must be >= 0.01, got -1"),
    ("AlertManager", "webhook_timeout", NAN, TypeError, "webhook_timeout: expected a finite number, got nan"),
    ("AlertManager", "webhook_timeout", INF, TypeError, "webhook_timeout: expected a finite number, got inf"),
    ("AlertManager", "window", True, TypeError, "window: expected a finite number, got True"),
    ("AlertManager", "window", "1", TypeError, "window: expected a finite number, got '1'"),
    ("AlertManager", "window", -1, ValueError, "window: must be >= 0.01, got -1"),
    ("AlertManager", "window", NAN, TypeError, "window: expected a finite number, got nan"),
    ("AlertManager", "window", INF, TypeError, "window: expected a finite number, got inf"),
    ("add_alert", "for_seconds", True, TypeError, "for_seconds: expected a finite number, got True"),
    ("add_alert", "for_seconds", "1", TypeError, "for_seconds: expected a finite number, got '1'"),
    ("add_alert", "for_seconds", -1, ValueError, "for_seconds: must be >= 0, got -1"),
    ("add_alert", "for_seconds", NAN, TypeError, "for_seconds: expected a finite number, got nan"),
    ("add_alert", "for_seconds", INF, TypeError, "for_seconds: expected a finite number, got inf"),
    ("add_alert", "threshold", True, TypeError, "threshold: expected a finite number, got True"),
    ("add_alert", "threshold", "1", TypeError, "threshold: expected a finite number, got '1'"),
    ("add_alert", "threshold", NAN, TypeError, "threshold: expected a finite number, got nan"),
    ("add_alert", "threshold", INF, TypeError, "threshold: expected a finite number, got inf"),
    ("MemoryBackend", "max_keys", True, TypeError, "max_keys: expected an int or None, got bool"),
    ("MemoryBackend", "max_keys", "1", TypeError, "max_keys: expected an int or None, got str"),
    ("MemoryBackend", "max_keys", -1, ValueError, "max_keys: must be positive, got -1"),
    ("MemoryBackend", "max_memory_bytes", True, TypeError, "max_memory_bytes: expected an int or None, got bool"),
    ("MemoryBackend", "max_memory_bytes", "1", TypeError, "max_memory_bytes: expected an int or None, got str"),
    ("MemoryBackend", "max_memory_bytes", -1, ValueError, "max_memory_bytes: must be positive, got -1"),
    (
        "RedisBackend",
        "connect_timeout",
        True,
        ValueError,
        "connect_timeout: must be a positive number of seconds, got True",
    ),
    (
        "RedisBackend",
        "connect_timeout",
        "1",
        ValueError,
        "connect_timeout: must be a positive number of seconds, got '1'",
    ),
    (
        "RedisBackend",
        "connect_timeout",
        NAN,
        ValueError,
        "connect_timeout: must be a positive number of seconds, got nan",
    ),
    ("RedisBackend", "max_connections", True, ValueError, "max_connections: must be a positive int, got True"),
    ("RedisBackend", "max_connections", "1", ValueError, "max_connections: must be a positive int, got '1'"),
    ("RedisBackend", "max_connections", NAN, ValueError, "max_connections: must be a positive int, got nan"),
    ("RedisBackend", "max_connections", INF, ValueError, "max_connections: must be a positive int, got inf"),
    (
        "RedisBackend",
        "socket_timeout",
        True,
        ValueError,
        "socket_timeout: must be a positive number of seconds, got True",
    ),
    (
        "RedisBackend",
        "socket_timeout",
        "1",
        ValueError,
        "socket_timeout: must be a positive number of seconds, got '1'",
    ),
    (
        "RedisBackend",
        "socket_timeout",
        NAN,
        ValueError,
        "socket_timeout: must be a positive number of seconds, got nan",
    ),
    ("cache.set", "ttl", True, TypeError, "ttl: expected seconds as a number or None, got bool"),
    ("cache.set", "ttl", "1", TypeError, "ttl: expected seconds as a number or None, got str"),
    ("cache.set", "ttl", -1, ValueError, "ttl: must be a positive number of seconds up to 1e+10, got -1"),
    ("cache.set", "ttl", NAN, ValueError, "ttl: must be a positive number of seconds up to 1e+10, got nan"),
    ("cache.set", "ttl", INF, ValueError, "ttl: must be a positive number of seconds up to 1e+10, got inf"),
    ("count_keys", "cpu_budget", True, ValueError, "cpu_budget: must be a number in (0, 1], got True"),
    ("count_keys", "cpu_budget", "1", ValueError, "cpu_budget: must be a number in (0, 1], got '1'"),
    ("count_keys", "cpu_budget", NAN, ValueError, "cpu_budget: must be a number in (0, 1], got nan"),
    ("count_keys", "cpu_budget", INF, ValueError, "cpu_budget: must be a number in (0, 1], got inf"),
    ("instrument", "capture_keys", "1", TypeError, "capture_keys: expected a bool, got str"),
]


@pytest.mark.parametrize(
    ("site", "field", "value", "error", "message"), CASES, ids=[f"{s}-{f}={v!r}" for s, f, v, _, _ in CASES]
)
async def test_a_bad_setting_raises_the_same_error_with_the_same_words(site, field, value, error, message):
    with pytest.raises(error) as info:
        result = SITES[site](field, value)
        if inspect.isawaitable(result):
            await result
    assert type(info.value) is error
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("default_ttl", None),
        ("default_ttl", 1e10),
        ("stats_exact_cpu_budget", 1),
        ("degraded_error_rate", 1),
        ("retry_attempts", 0),
        ("retry_attempts", 10),
        ("retry_backoff", 0),
        ("enable_tracing", None),
        ("max_keys", None),
    ],
)
def test_the_bounds_themselves_are_accepted(field, value):
    assert getattr(CacheConfig(**{field: value}), field) == value


def test_a_nan_fails_every_range_even_where_a_comparison_used_to_let_it_through():
    # OTLPCollector's export_interval once compared "<= 0", which a NaN passes; a reader with a
    # NaN interval never exports, so it is refused like every other NaN setting.
    with pytest.raises(ValueError, match=r"^export_interval: expected a positive number of seconds, got nan$"):
        OTLPCollector(export_interval=NAN)
    with pytest.raises(ValueError, match="must be in"):
        validation.number("x", NAN, rule="must be in (0, 1]", minimum=0, maximum=1, allow_zero=False)
    validation.number("x", NAN, kind="a number")  # no range asked for: a type check only


def test_a_bool_is_never_a_number_nor_a_port():
    with pytest.raises(TypeError, match=r"^x: expected a number, got bool$"):
        validation.number("x", True, kind="a number")
    with pytest.raises(ValueError, match=r"^p: expected an int between 1 and 65535, got True$"):
        validation.port("p", True)
    assert validation.is_number(1.5) and not validation.is_number(False) and not validation.is_int(2.0)


def test_metrics_may_be_anything_with_the_two_providers_the_cache_reads():
    class Providers:
        meter_provider = None
        tracer_provider = None

    assert CacheConfig(metrics=Providers()).metrics is not None
    with pytest.raises(TypeError, match=r"^metrics: expected a CacheMetrics, got object$"):
        CacheConfig(metrics=object())


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 0.5, 0.0), ([3.0], 0.99, 3.0), ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0), ([1.0, 2.0, 3.0, 4.0], 0.95, 4.0)],
)
def test_percentile_is_the_nearest_rank_of_the_sorted_values(values, q, expected):
    assert percentile(values, q) == expected
