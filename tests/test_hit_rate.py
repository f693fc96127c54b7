"""Before any read there is no hit rate, and every surface says so the same way.

``None`` in Python, ``null`` in JSON, absent from the exporters -- never a 0.0 that reads as
"every read missed" and trips a low-hit-rate alert on a fresh, idle cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from yokedcache.telemetry import semconv as sc


async def test_before_any_read_every_python_surface_has_no_hit_rate(make_cache, telemetry):
    cache = make_cache()
    await cache.set("k", 1)  # writes are not reads
    assert (await cache.get_stats()).hit_rate is None
    assert cache.get_comprehensive_metrics().hit_rate is None
    report = await cache.detailed_health_check()
    assert report["performance_metrics"]["hit_rate"] is None
    assert json.loads(json.dumps(report, default=str))["performance_metrics"]["hit_rate"] is None
    assert sc.HIT_RATE not in telemetry.metrics()
    await cache.get("k")  # then the first read gives a value everywhere
    assert (await cache.get_stats()).hit_rate == 1.0
    assert cache.get_comprehensive_metrics().hit_rate == 1.0
    assert telemetry.value(sc.HIT_RATE) == 1.0


def test_stats_json_and_health_json_print_null(redis_url):
    env = {**os.environ, "YOKEDCACHE_REDIS_URL": redis_url}  # the probes' default: the library's Redis URL
    for command in (["stats", "--json"], ["health", "--json"]):
        result = subprocess.run([sys.executable, "-m", "yokedcache", *command], capture_output=True, text=True,
                                timeout=60, env=env)  # fmt: skip
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        hit_rate = data["hit_rate"] if command[0] == "stats" else data["performance_metrics"]["hit_rate"]
        assert hit_rate is None, command
        assert '"hit_rate": null' in result.stdout
