"""Every operation fails open, fails closed and is cancelled the same way.

Seven operations share one wrapper (``YokedCache._run``) and get/set inline the same steps, so
each case below runs all nine against a backend that fails, or never answers, every call: a
local one (no guard: the cache calls it directly), and a real Redis client (every call goes
through the guard, its breaker and deadline, and get/set through their loop-bound branch) at a
port where nothing listens or at a socket that accepts connections and never answers.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from yokedcache import CacheConfig, YokedCache
from yokedcache.backends.base import Backend, BackendInfo, Usage
from yokedcache.errors import CacheConnectionError, CacheTimeoutError
from yokedcache.telemetry import semconv as sc

from .conftest import Telemetry
from .redis_server import free_port

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


#: The failing backends: the error their operations raise, its reason, and the span's
#: ``error.type`` (the driver's exception where there is one, as the semantic conventions ask).
FAILING: dict[str, tuple[type[CacheConnectionError], str, str]] = {
    "broken": (CacheConnectionError, "connection refused", "yokedcache.errors.CacheConnectionError"),
    # nothing listens at its port
    "redis-down": (CacheConnectionError, "connection refused", "redis.exceptions.ConnectionError"),
    # the deadline (operation_timeout) ends each call
    "redis-hung": (CacheTimeoutError, "timed out", "TimeoutError"),
}
#: The backends that never answer (a cancellation finds the call in flight).
HANGING = ["broken", "redis-hung"]


@pytest.fixture(params=list(FAILING))
def failing(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=HANGING)
def hanging(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port whose socket accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        yield int(hung.getsockname()[1])


@pytest.fixture
async def broken(telemetry: Telemetry, hung_port: int) -> AsyncIterator[Callable[..., YokedCache]]:
    """Caches on a failing backend (a key of FAILING), traced into ``telemetry``, closed at teardown.

    ``deadline`` is the Redis caches' operation_timeout: short where the deadline is the failure,
    long where the caller's cancellation must come first. No retries: each call is one attempt;
    the breaker (threshold 5) stays closed through the one failure of a case.
    """
    made: list[YokedCache] = []

    def make(kind: str, fail_open: bool = True, deadline: float = 0.05) -> YokedCache:
        if kind == "broken":
            where: dict[str, Any] = {"backend": BrokenBackend("down")}
        elif kind == "broken-hung":
            where = {"backend": BrokenBackend("hung")}
        else:
            port = hung_port if kind == "redis-hung" else free_port()
            where = {"redis_url": f"redis://127.0.0.1:{port}/0", "retry_attempts": 0,
                     "operation_timeout": deadline, "connect_timeout": deadline}  # fmt: skip
        made.append(
            YokedCache(
                CacheConfig(
                    **where,
                    fail_open=fail_open,
                    enable_tracing=True,
                    meter_provider=telemetry.meter_provider,
                    tracer_provider=telemetry.tracer_provider,
                )
            )
        )
        cache = made[-1]
        # a remote backend's every call goes through the guard (breaker, deadline, classification)
        assert cache.backend.remote is kind.startswith("redis")
        assert (cache.breaker is not None) is cache.backend.remote
        return cache

    yield make
    for cache in made:
        await cache.close()


def spans_of(telemetry: Telemetry, op: str) -> Sequence[Any]:
    return [s for s in telemetry.spans.get_finished_spans() if s.attributes.get(sc.CACHE_OPERATION) == op]


async def test_a_failing_backend_gets_each_operation_its_default_one_error_and_an_error_span(
    operation: Operation, failing: str, broken: Callable[..., YokedCache], telemetry: Telemetry
) -> None:
    op, call, fallback = operation
    _, reason, error_type = FAILING[failing]
    cache = broken(failing)
    assert await call(cache) == fallback
    counters = cache.telemetry.counters
    assert counters.calls[op] == 1 and counters.total_calls == 1
    assert {o for o, _ in counters.errors} == {op} and counters.error_total == 1
    assert counters.cancellations == 0
    assert cache.last_failure is not None and cache.last_failure[1] == reason
    (span,) = spans_of(telemetry, op)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == error_type


async def test_without_fail_open_each_operation_raises_the_backend_error(
    operation: Operation, failing: str, broken: Callable[..., YokedCache]
) -> None:
    _, call, _ = operation
    error, reason, _ = FAILING[failing]
    cache = broken(failing, fail_open=False)
    with pytest.raises(CacheConnectionError, match=reason) as raised:
        await call(cache)
    assert type(raised.value) is error
    assert cache.telemetry.counters.error_total == 1


async def test_a_cancelled_operation_is_counted_apart_and_its_span_is_no_error(
    operation: Operation, hanging: str, broken: Callable[..., YokedCache], telemetry: Telemetry
) -> None:
    op, call, _ = operation
    cache = broken("broken-hung" if hanging == "broken" else hanging, deadline=30.0)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(call(cache), 0.01)
    counters = cache.telemetry.counters
    assert counters.cancellations == 1
    assert counters.error_total == 0 and counters.total_calls == 0
    assert cache.last_failure is None
    (span,) = spans_of(telemetry, op)
    assert span.attributes[sc.CACHE_CANCELLED] is True
    assert span.status.status_code is not StatusCode.ERROR
