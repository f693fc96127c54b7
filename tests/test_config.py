"""Every CacheConfig field rejects wrong types and values with an error naming the field."""

from __future__ import annotations

import pytest

from yokedcache import CacheConfig, YokedCache
from yokedcache.backends import MemoryBackend

BAD_VALUES = [
    ("redis_url", 123, TypeError),
    ("redis_url", "http://localhost:6379", ValueError),
    ("backend", "memcached", ValueError),
    ("backend", 42, TypeError),
    ("metrics", "prometheus", TypeError),
    ("enable_metrics", "yes", TypeError),
    ("enable_tracing", 1, TypeError),
    ("metrics_retention_days", 0, ValueError),
    ("metrics_retention_days", "7", TypeError),
    ("metrics_retention_days", float("inf"), ValueError),
    ("key_prefix", 5, TypeError),
    ("key_prefix", "a\nb", ValueError),
    ("default_ttl", -1, ValueError),
    ("default_ttl", float("nan"), ValueError),
    ("default_ttl", "300", TypeError),
    ("default_ttl", 1e11, ValueError),  # past MAX_TTL (~317 years): Redis could not store the expiry
    ("max_memory_bytes", 0, ValueError),
    ("max_memory_bytes", 1.5, TypeError),
    ("max_keys", -3, ValueError),
    ("max_keys", True, TypeError),
    ("max_connections", 0, ValueError),
    ("max_connections", None, TypeError),
    ("connect_timeout", 0, ValueError),
    ("operation_timeout", -0.1, ValueError),
    ("operation_timeout", "1", TypeError),
    ("fail_open", None, TypeError),
    ("serializer", "yaml", ValueError),
    ("serializer", 3, TypeError),
    ("capture_keys", "no", TypeError),
    ("circuit_breaker_enabled", 0, TypeError),
    ("circuit_failure_threshold", 0, ValueError),
    ("circuit_recovery_timeout", 0, ValueError),
    ("retry_attempts", -1, ValueError),
    ("retry_attempts", 11, ValueError),
    ("retry_attempts", 1.0, TypeError),
    ("retry_backoff", -1, ValueError),
    ("stats_refresh_interval", 0, ValueError),
    ("health_check_timeout", float("inf"), ValueError),
]


@pytest.mark.parametrize(("field", "value", "error"), BAD_VALUES, ids=[f"{f}={v!r}" for f, v, _ in BAD_VALUES])
def test_bad_value_raises_naming_the_field(field, value, error):
    with pytest.raises(error, match=field):
        CacheConfig(**{field: value})


def test_defaults_select_the_embedded_memory_backend(monkeypatch):
    monkeypatch.delenv("YOKEDCACHE_REDIS_URL", raising=False)
    cache = YokedCache()
    assert isinstance(cache.backend, MemoryBackend)


def test_positional_keyword_and_override_construction_all_work():
    cfg = CacheConfig(key_prefix="x:")
    assert YokedCache(cfg).config is cfg
    assert YokedCache(config=cfg).config is cfg
    assert YokedCache(key_prefix="y:").config.key_prefix == "y:"
    with pytest.raises(TypeError, match="config"):
        YokedCache("redis://localhost")  # type: ignore[arg-type]


def test_junk_environment_url_is_rejected_by_name(monkeypatch):
    monkeypatch.setenv("YOKEDCACHE_REDIS_URL", "not a url")
    with pytest.raises(ValueError, match="YOKEDCACHE_REDIS_URL"):
        YokedCache()


def test_memory_backend_conflicts_with_redis_url():
    with pytest.raises(ValueError, match="backend"):
        CacheConfig(backend="memory", redis_url="redis://localhost/0")


def test_backend_instance_is_used_as_given():
    backend = MemoryBackend(max_keys=5)
    assert YokedCache(CacheConfig(backend=backend)).backend is backend


@pytest.mark.parametrize("field", ["meter_provider", "tracer_provider"])
def test_a_provider_that_is_not_one_is_refused_at_construction(field):
    with pytest.raises(TypeError, match=field):
        CacheConfig(**{field: "x"})


@pytest.mark.parametrize("value", [0, 1.5, float("nan"), -1])
def test_degraded_error_rate_must_be_a_share(value):
    with pytest.raises(ValueError, match="degraded_error_rate"):
        CacheConfig(degraded_error_rate=value)
