"""Every setting's error keeps its exact type and text across refactors.

The texts were produced by the hand-written checks before ``yokedcache.validation`` replaced
them (src/yokedcache/validation.py): users and other tests match on these messages, so any
change here is a visible change of behaviour, never a tidy-up.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from yokedcache import CacheConfig, YokedCache, validation
from yokedcache.alerting.manager import AlertManager
from yokedcache.alerting.notifiers import SMTPSettings
from yokedcache.backends import MemoryBackend
from yokedcache.backends.redis import RedisBackend
from yokedcache.exporters.statsd import StatsDMetricExporter, StatsDSink
from yokedcache.instrumentor import YokedCacheInstrumentor
from yokedcache.monitoring import CacheMetrics, OTLPCollector, StatsDCollector
from yokedcache.percentiles import percentile
from yokedcache.server.http import MetricsServer

NAN, INF = float("nan"), float("inf")
NOWHERE = "redis://localhost:1/0"  # never connected: every check runs before any I/O


def _alert(field: str, value: Any) -> Any:
    manager = AlertManager(YokedCache())
    args = {"name": "a", "metric": "hit_rate", "threshold": 1, "comparison": "<", field: value}
    return manager.add_alert(**args)


def _from_env(build: Callable[[], Any]) -> Callable[[str, Any], Any]:
    """A site that reads its settings from the environment: ``field`` is the variable, ``value`` its text
    (with an SMTP host set, so that ``SMTPSettings.from_env`` goes on to read the port)."""

    def site(variable: str, text: Any) -> Any:
        with mock.patch.dict(os.environ, {"YOKEDCACHE_SMTP_HOST": "h", variable: text}):
            return build()

    return site


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
    "StatsDMetricExporter.env": _from_env(StatsDMetricExporter),
    "SMTPSettings.from_env": _from_env(SMTPSettings.from_env),
}

#: ``[site, field, value, error, message]``: the texts the hand-written checks produced before
#: this module replaced them (NaN and Infinity as Python's json writes them).
CASES = [
    (site, field, value, {"TypeError": TypeError, "ValueError": ValueError}[error], message)
    for site, field, value, error, message in json.loads(
        (Path(__file__).parent / "validation_messages.json").read_text()
    )
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
