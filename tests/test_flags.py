"""Flags are flags: every boolean parameter of every public class refuses "no", 0, None and [].

The classes are found, not listed: every class of every yokedcache module whose constructor
has a parameter annotated ``bool`` (or defaulting to one). A new flag is walked the day it is
added; a class without the arguments it needs to be built here fails until ``REQUIRED`` has them.
``None`` is a value only where the annotation says ``bool | None`` (then: "from the environment").
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import pytest

import yokedcache
from yokedcache.backends.base import BackendInfo

#: Records a library builds and hands out (reports, readings), never settings a user passes.
RECORDS = {
    "yokedcache.health.CacheStats",
    "yokedcache.telemetry.observers.StateReading",
    "yokedcache.exporters.shutdown.Outcome",
    "yokedcache.backends.redis_usage.Sample",
    "yokedcache.telemetry.switch.Settings",  # built by the instrumentor from its checked arguments
    "yokedcache.bench.Progress",  # the CLI's progress line, built from argparse's store_true
    "yokedcache.cache_aside.Options",  # what CacheAside.options built from its checked arguments
    "yokedcache.backends.base.DriverTelemetry",  # what redis_otel read off redis-py, not a setting
}
#: What a constructor needs besides the flag under test (nothing here connects anywhere).
REQUIRED: dict[str, dict[str, Any]] = {
    "yokedcache.backends.redis.RedisBackend": {"redis_url": "redis://127.0.0.1:1/0"},
    "yokedcache.backends.redis_cluster.RedisClusterBackend": {"redis_url": "redis+cluster://127.0.0.1:1"},
    "yokedcache.backends.redis_sentinel.RedisSentinelBackend": {"redis_url": "redis+sentinel://127.0.0.1:1/mymaster"},
    "yokedcache.monitoring.prometheus.PrometheusCollector": {"port": None},
    "yokedcache.server.http.MetricsServer": {"port": 0},  # never the fixed default port, even on a miss
    "yokedcache.monitoring.otlp.OTLPCollector": {"endpoint": "http://127.0.0.1:1", "protocol": "http/protobuf"},
    "yokedcache.telemetry.instrumentation.Instrumentation": {"backend_info": BackendInfo(kind="memory")},
}
NOT_FLAGS = ["no", 0, None, []]


def _flags() -> list[tuple[str, type, str, bool]]:
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(yokedcache.__path__, "yokedcache."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue  # private modules (and __main__, which runs the CLI)
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and not name.startswith("_")
                and obj.__module__ == module.__name__
                and not issubclass(obj, BaseException)
            ):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    flags = []
    for path, cls in sorted(found.items()):
        if path in RECORDS:
            continue
        for p in inspect.signature(cls).parameters.values():
            annotation = str(p.annotation)
            if annotation.startswith("bool") or isinstance(p.default, bool):
                flags.append((path, cls, p.name, "None" in annotation))
    return flags


FLAGS = _flags()


def test_the_walk_finds_the_flags_the_issue_named():
    names = {(path.rsplit(".", 1)[1], flag) for path, _, flag, _ in FLAGS}
    assert {("PrometheusCollector", "status_page"), ("CacheConfig", "auto_pipeline"), ("OTLPCollector", "traces"),
            ("StatsDCollector", "use_tags"), ("RedisBackend", "auto_pipeline")} <= names  # fmt: skip


@pytest.mark.parametrize("value", NOT_FLAGS, ids=repr)
@pytest.mark.parametrize(
    ("path", "cls", "flag", "nullable"), FLAGS, ids=[f"{p.rsplit('.', 1)[1]}.{f}" for p, _, f, _ in FLAGS]
)
def test_a_flag_refuses_what_is_not_a_bool(path, cls, flag, nullable, value):
    kwargs = {**REQUIRED.get(path, {}), flag: value}
    if value is None and nullable:
        made = cls(**kwargs)  # documented: None = decide from the environment or the backend
        for close in ("shutdown", "close"):
            if callable(getattr(made, close, None)) and not inspect.iscoroutinefunction(getattr(made, close)):
                getattr(made, close)()
                break
        return
    with pytest.raises(TypeError, match=rf"^{flag}: expected a bool"):
        cls(**kwargs)
