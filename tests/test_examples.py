"""Each example (the snippets of docs/monitoring.md) runs as written, against the private Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, **env: str) -> str:
    full_env = {**os.environ, **env}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=60, env=full_env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_metrics_collectors_example(redis_url):
    out = run_example("metrics_collectors.py", YOKEDCACHE_REDIS_URL=redis_url, PROMETHEUS_PORT="0", STATSD_PORT="9")
    assert "get: {'name': 'Ada'} None" in out
    assert 'myapp_cache_gets_total{cache_name="redis",result="hit"} 1.0' in out


def test_prometheus_integration_example():
    out = run_example("prometheus_integration.py", PROMETHEUS_PORT_1="0", PROMETHEUS_PORT_2="0", PROMETHEUS_PORT_3="0")
    assert 'yokedcache_cache_gets_total{cache_name="memory",result="hit"} 1.0' in out
    labels = 'cache_name="memory",environment="production",result="hit",service="api"'
    assert "myapp_cache_backend_cache_gets_total{" + labels + "} 1.0" in out
    assert (
        'myapp_cache_gets_total{cache_name="memory",environment="production",region="us-east-1",result="miss",' in out
    )


def test_statsd_integration_example():
    out = run_example("statsd_integration.py")
    lines = out.splitlines()
    assert "myapp.cache.gets:100|c|#cache.name:memory,result:hit" not in lines  # 20 of the 100 gets miss
    assert "myapp.cache.gets:80|c|#cache.name:memory,result:hit" in lines
    assert "myapp.cache.gets:20|c|#cache.name:memory,result:miss" in lines
    assert "myapp.cache.sets:100|c|#cache.name:memory" in lines
    assert any(
        x.startswith("myapp.cache.operation_duration:") and x.endswith("|#cache.name:memory,operation:get")
        for x in lines
    )


def test_custom_metrics_example():
    out = run_example("custom_metrics.py")
    assert "increment user.login 1 {'source': 'api', 'method': 'oauth'}" in out
    assert "gauge active_sessions 42 {'server': 'web-01'}" in out
    assert "timing request_processing" in out
    assert "increment cache.gets 1 {'cache.name': 'memory', 'result': 'hit'}" in out


@pytest.mark.parametrize("name", ["quickstart.py"])
def test_quickstart_runs(name):
    assert "yokedcache.cache.gets" in run_example(name)


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_health_checks_example(backend, request):
    env = {"YOKEDCACHE_REDIS_URL": request.getfixturevalue("redis_url")} if backend == "redis" else {}
    out = run_example("health_checks.py", **env)
    assert "Cache is healthy: True" in out
    assert "Status: healthy" in out
    assert "Hit rate: 50.00%" in out
    assert "Total operations: 150" in out
    if backend == "redis":
        assert "Redis connected: True" in out
        assert "'max_connections': 50" in out
        assert "Circuit breaker: {'state': 'closed'" in out
    assert "History: up to 10080 snapshots, one per 60s" in out
    # the detailed check's performance figures and the snapshot describe the same operations
    performance = next(line for line in out.splitlines() if line.startswith("Performance metrics: "))
    assert "'hit_rate': 0.5," in performance and "'total_operations': 150," in performance, performance


def test_health_monitor_example():
    lines = run_example("health_monitor.py", PROMETHEUS_PORT="0").splitlines()
    assert "cache_health 1.0" in lines  # docs/monitoring.md, 'Health Monitoring': its monitor, through CacheMetrics
    assert 'yokedcache_cache_health{cache_name="memory"} 1.0' in lines  # the cache's own export
    assert "cache_hit_rate 0.75" in lines
    assert "cache_keys_count 30.0" in lines


def test_error_tracking_example():
    out = run_example("error_tracking.py", PROMETHEUS_PORT="0", YOKEDCACHE_REDIS_URL="redis://127.0.0.1:9/0")
    assert "tracked: {'get.connection': 10}" in out  # every failure reached `except ConnectionError`
    assert "cache error rate: 100%" in out
    assert "cache_error_rate_get 1.0" in out
    exported = [line for line in out.splitlines() if line.startswith("yokedcache_cache_errors_total{")]
    tracked = [line for line in out.splitlines() if line.startswith("cache_errors_total{")]
    # the application's tracker and the cache's own counter agree on the total
    assert sum(float(x.rsplit(" ", 1)[1]) for x in exported) == 10
    assert sum(float(x.rsplit(" ", 1)[1]) for x in tracked) == 10


def test_realtime_monitoring_example():
    out = run_example("realtime_monitoring.py")
    assert "ALERT: Low hit rate: 0.00%" in out
    assert "High error rate" not in out
