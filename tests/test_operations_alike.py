"""Every operation fails open, fails closed and is cancelled the same way.

Seven operations share one wrapper (``YokedCache._run``) and get/set inline the same steps, so
each case below runs all nine against a backend that fails, or never answers, every call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from yokedcache import CacheConfig, YokedCache
from yokedcache.backends.base import Backend, BackendInfo, Usage
from yokedcache.errors import CacheConnectionError
from yokedcache.telemetry import semconv as sc

from .conftest import Telemetry

#: An operation's name, a call of it, and what it returns when the backend fails (fail-open).
Operation = tuple[str, Callable[[YokedCache], Awaitable[Any]], Any]
OPERATIONS: list[Operation] = [
    (sc.OP_GET, lambda c: c.get("k", "default"), "default"),
    (sc.OP_SET, lambda c: c.set("k", 1), False),
    (sc.OP_DELETE, lambda c: c.delete("k"), False),
    (sc.OP_EXISTS, lambda c: c.exists("k"), False),
    (sc.OP_GET_MANY, lambda c: c.get_many(["a", "b"], 0), {"a": 0, "b": 0}),
    (sc.OP_SET_MANY, lambda c: c.set_many({"a": 1}, tags=["t"]), False),
    (sc.OP_INVALIDATE_PATTERN, lambda c: c.invalidate_pattern("*"), 0),
    (sc.OP_INVALIDATE_TAGS, lambda c: c.invalidate_tags("t"), 0),
    (sc.OP_CLEAR, lambda c: c.clear(), 0),
]
IDS = [op for op, _, _ in OPERATIONS]


class BrokenBackend(Backend):
    """Every data call raises a backend error (``down``) or waits forever (``hung``)."""

    info = BackendInfo(kind="broken")

    def __init__(self, mode: str) -> None:
        self.mode = mode

    async def _answer(self, *_: object) -> Any:
        if self.mode == "down":
            raise CacheConnectionError("backend unreachable: connection refused", reason="connection refused")
        await asyncio.Event().wait()

    get = get_many = set = set_many = delete = exists = invalidate_pattern = invalidate_tags = ping = _answer

    async def usage(self, pattern: str) -> Usage:
        return Usage(keys=0, bytes=0)

    def pool_stats(self) -> dict[str, Any] | None:
        return None

    async def drop_idle_connections(self) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.fixture(params=OPERATIONS, ids=IDS)
def operation(request: pytest.FixtureRequest) -> Operation:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def broken(telemetry: Telemetry) -> AsyncIterator[Callable[..., YokedCache]]:
    """Caches on a :class:`BrokenBackend`, traced into ``telemetry``, closed at teardown."""
    made: list[YokedCache] = []

    def make(mode: str, fail_open: bool = True) -> YokedCache:
        made.append(
            YokedCache(
                CacheConfig(
                    backend=BrokenBackend(mode),
                    fail_open=fail_open,
                    enable_tracing=True,
                    meter_provider=telemetry.meter_provider,
                    tracer_provider=telemetry.tracer_provider,
                )
            )
        )
        return made[-1]

    yield make
    for cache in made:
        await cache.close()


def spans_of(telemetry: Telemetry, op: str) -> Sequence[Any]:
    return [s for s in telemetry.spans.get_finished_spans() if s.attributes.get(sc.CACHE_OPERATION) == op]


async def test_a_failing_backend_gets_each_operation_its_default_one_error_and_an_error_span(
    operation: Operation, broken: Callable[..., YokedCache], telemetry: Telemetry
) -> None:
    op, call, fallback = operation
    cache = broken("down")
    assert await call(cache) == fallback
    counters = cache.telemetry.counters
    assert counters.calls[op] == 1 and counters.total_calls == 1
    assert {o for o, _ in counters.errors} == {op} and counters.error_total == 1
    assert counters.cancellations == 0
    assert cache.last_failure is not None and cache.last_failure[1] == "connection refused"
    (span,) = spans_of(telemetry, op)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE].endswith("CacheConnectionError")


async def test_without_fail_open_each_operation_raises_the_backend_error(
    operation: Operation, broken: Callable[..., YokedCache]
) -> None:
    _, call, _ = operation
    cache = broken("down", fail_open=False)
    with pytest.raises(CacheConnectionError, match="connection refused"):
        await call(cache)
    assert cache.telemetry.counters.error_total == 1


async def test_a_cancelled_operation_is_counted_apart_and_its_span_is_no_error(
    operation: Operation, broken: Callable[..., YokedCache], telemetry: Telemetry
) -> None:
    op, call, _ = operation
    cache = broken("hung")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(call(cache), 0.01)
    counters = cache.telemetry.counters
    assert counters.cancellations == 1
    assert counters.error_total == 0 and counters.total_calls == 0
    assert cache.last_failure is None
    (span,) = spans_of(telemetry, op)
    assert span.attributes[sc.CACHE_CANCELLED] is True
    assert span.status.status_code is not StatusCode.ERROR
