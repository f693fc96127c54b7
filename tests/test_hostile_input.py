"""Property-based tests (hypothesis) over hostile keys, values, TTLs, tags, glob patterns and
metric names: every case works or raises a documented error, and nothing else is damaged."""

from __future__ import annotations

import asyncio
import math
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from yokedcache import CacheConfig, YokedCache
from yokedcache.errors import SerializationError
from yokedcache.monitoring import CacheMetrics
from yokedcache.telemetry import semconv as sc

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
REDIS_SETTINGS = settings(max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip

# Any text, including control characters, glob metacharacters and lone surrogates.
keys = st.text(st.characters(codec=None), max_size=40) | st.sampled_from(
    ["", "*", "?", "[a-", "\\", "\x00", "k" * 5000]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(params=["memory", "redis"])
def hostile_cache(request, loop):
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    cache = YokedCache(CacheConfig(redis_url=url, fail_open=False, enable_metrics=False))
    yield cache
    loop.run_until_complete(cache.close())


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@REDIS_SETTINGS
@given(key=keys, value=json_values)
@example(key="\ud800", value=1)
def test_any_key_and_json_value_round_trips_or_is_refused_cleanly(hostile_cache, loop, key, value):
    cache = hostile_cache
    run = loop.run_until_complete
    run(cache.set("bystander", {"safe": True}))
    if not is_utf8(key):
        with pytest.raises(ValueError, match="key"):
            run(cache.set(key, value))
    else:
        assert run(cache.set(key, value)) is True
        assert run(cache.get(key)) == value
        assert run(cache.exists(key)) is True
        assert run(cache.delete(key)) is True
        assert run(cache.get(key, "gone")) == "gone"
    assert run(cache.get("bystander")) == {"safe": True}


unserialisable = st.one_of(
    st.sets(st.integers(), min_size=1),
    st.binary(min_size=1),
    st.just(object()),
    st.floats(allow_nan=True).filter(lambda f: not math.isfinite(f)),
    st.builds(complex, st.floats(allow_nan=False), st.floats(allow_nan=False)),
    st.dictionaries(st.tuples(st.integers()), st.integers(), min_size=1),
)


@SETTINGS
@given(value=unserialisable)
def test_unserialisable_values_raise_serialization_error_and_write_nothing(loop, value):
    async def scenario() -> None:
        async with YokedCache() as cache:
            await cache.set("k", "old")
            with pytest.raises(SerializationError):
                await cache.set("k", value)
            assert await cache.get("k") == "old"

    loop.run_until_complete(scenario())


def test_recursive_and_huge_values(loop):
    async def scenario() -> None:
        async with YokedCache(CacheConfig(max_memory_bytes=1024 * 1024)) as cache:
            recursive: list = []
            recursive.append(recursive)
            with pytest.raises(SerializationError):
                await cache.set("r", recursive)
            with pytest.raises(ValueError, match="max_memory_bytes"):
                await cache.set("big", "x" * (2 * 1024 * 1024))
            deep: list = []
            for _ in range(100_000):
                deep = [deep]
            with pytest.raises(SerializationError):
                await cache.set("deep", deep)
            assert await cache.set("ok", 1) is True

    loop.run_until_complete(scenario())


ttls = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([0, -1, 0.0, -0.0, 1e-9, 1e10, 1e10 + 1, float("nan"), float("inf")]),
)


@SETTINGS
@given(ttl=ttls)
def test_ttls_are_positive_and_bounded_or_refused(loop, ttl):
    async def scenario() -> None:
        async with YokedCache() as cache:
            if (isinstance(ttl, float) and math.isnan(ttl)) or not (0 < ttl <= 1e10):
                with pytest.raises(ValueError, match="ttl"):
                    await cache.set("k", 1, ttl=ttl)
            else:
                assert await cache.set("k", 1, ttl=ttl) is True

    loop.run_until_complete(scenario())


@SETTINGS
@given(ttl=st.one_of(st.text(max_size=3), st.booleans(), st.lists(st.integers(), max_size=1)))
def test_ttls_of_the_wrong_type_are_type_errors(loop, ttl):
    async def scenario() -> None:
        async with YokedCache() as cache:
            with pytest.raises(TypeError, match="ttl"):
                await cache.set("k", 1, ttl=ttl)

    loop.run_until_complete(scenario())


@REDIS_SETTINGS
@given(
    stored=st.lists(st.text(st.characters(codec="utf-8"), max_size=6), max_size=12, unique=True),
    pattern=st.text(st.sampled_from("ab*?[]^-\\!x"), max_size=6),
)
@example(stored=["a*", "ab", "a"], pattern="a\\*")
@example(stored=["[", "a]", "b"], pattern="[")
@example(stored=["\x80", "é", "a"], pattern="?")  # Redis matches bytes: "?" is one byte, not one character
def test_glob_patterns_mean_the_same_on_both_backends_and_stay_in_the_prefix(redis_url, loop, stored, pattern):
    """Differential: the memory backend's glob must delete exactly what Redis's SCAN MATCH deletes."""

    async def deleted_by(url: str | None) -> set[str]:
        async with YokedCache(CacheConfig(redis_url=url, key_prefix="p:")) as cache, \
                YokedCache(CacheConfig(redis_url=url, key_prefix="other:")) as other:  # fmt: skip
            await cache.clear()
            await other.clear()
            for key in stored:
                await cache.set(key, 1)
                await other.set(key, 1)
            removed = await cache.invalidate_pattern(pattern)
            left = {k for k in stored if await cache.exists(k)}
            assert all([await other.exists(k) for k in stored])  # another prefix is never touched
            assert removed == len(stored) - len(left)
            return set(stored) - left

    assert loop.run_until_complete(deleted_by(None)) == loop.run_until_complete(deleted_by(redis_url))


@REDIS_SETTINGS
@given(tags=st.lists(st.text(max_size=10).filter(is_utf8), min_size=1, max_size=4))
def test_any_tag_invalidates_exactly_its_keys(hostile_cache, loop, tags):
    cache = hostile_cache
    run = loop.run_until_complete
    run(cache.set("tagged", 1, tags=tags))
    run(cache.set("untagged", 2))
    assert run(cache.invalidate_tags(tags[-1])) == 1
    assert run(cache.get("tagged")) is None and run(cache.get("untagged")) == 2


# -- the shim: metric names and tag values that would break StatsD or Prometheus -------------
_STATSD_LINE = re.compile(r"^[A-Za-z0-9_.\-/]+:-?[0-9.e+-]+\|(c|g|h|ms)(\|@[0-9.e-]+)?(\|#[^|\n]*)?$")


#: Application metric names that land on a built-in's family (docs/monitoring.md's health monitor uses some).
_BUILT_IN_NAMES = sorted({name.removeprefix("yokedcache.") for name in sc.BUILT_IN_UNITS}
                         | {"cache.size_bytes", "cache.operation_duration_seconds"})  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(name=st.one_of(st.text(max_size=30), st.sampled_from(_BUILT_IN_NAMES)),
       tags=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
       value=st.floats(min_value=0, max_value=1e12))  # fmt: skip
@example(name="A\n", tags={}, value=0.0)  # a regex ending in "$" let the final newline through
@example(name="A", tags={"le": "big"}, value=0.0)  # Prometheus' reserved label names are refused
@example(name="A", tags={"": ""}, value=0.0)
def test_shim_names_and_tag_values_never_break_statsd_or_prometheus(name, tags, value):
    from prometheus_client.parser import text_string_to_metric_families

    from yokedcache.monitoring import PrometheusCollector, StatsDCollector

    from .receivers import StatsDListener, exposition_duplicates

    listener = StatsDListener()
    sink = StatsDCollector("127.0.0.1", listener.port, prefix="app", use_tags=True, flush_interval=3600)
    prometheus = PrometheusCollector(port=None, namespace="app")
    metrics = CacheMetrics([prometheus, sink], export_interval=3600)
    try:
        cache = YokedCache(CacheConfig(metrics=metrics))  # its built-in series beside the application's

        async def record() -> None:
            await cache.set("k", 1)
            await cache.get("k")
            await metrics.increment(name, value, tags=tags)
            await metrics.gauge(name + "_g", value, tags=tags)

        try:
            asyncio.run(record())
        except ValueError as exc:  # the documented refusal of an invalid metric or tag name
            assert "metric" in str(exc) or str(exc).startswith("tags: ")
            return
        metrics.force_flush()
        # the gauge is always sent; a counter that moved by 0 sends nothing (a delta of 0)
        listener.wait_for(lambda: any("|g" in line for line in listener.lines()))
        for line in listener.lines():
            assert _STATSD_LINE.match(line), line
        from prometheus_client.exposition import generate_latest

        text = generate_latest(prometheus.registry).decode()
        assert exposition_duplicates(text) == []  # a name collision would make Prometheus reject it
        families = list(text_string_to_metric_families(text))
        assert "app_cache_gets" in {f.name for f in families}
    finally:
        metrics.shutdown()
        listener.close()
