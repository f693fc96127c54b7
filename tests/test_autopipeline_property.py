"""Property test: random interleavings of operations, cancellations and a killed redis-server,
checked reply by reply against a model.

Each task works on keys of its own, so what each key may hold is decided by that task's own
history; the interleaving across tasks (random yields) decides which commands meet in a batch.
The model keeps, per key, the set of values it may hold: a write that failed or was cancelled may
land at any later time, one that overlapped a kill may or may not have survived it, and a kill
(no persistence) loses everything.
A reply outside the model -- another caller's value, a stale reply from a connection out of
step -- fails the test, and so does any exception other than the cache's own backend errors.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from yokedcache import CacheConfig, YokedCache
from yokedcache.errors import CacheBackendError

from .redis_server import RedisServer

OPS = ("get", "set", "set_tagged", "delete", "exists", "get_many", "set_many")
KEYS_PER_TASK = 3


@dataclass(frozen=True)
class Step:
    op: str
    key: int
    yields_before: int
    cancel_after: int | None  # None: awaited to the end; n: cancelled after n loop turns


@dataclass(frozen=True)
class Program:
    tasks: list[list[Step]]
    kill_after: int | None  # loop turns before the server is killed (then restarted)
    retries: int


steps = st.builds(
    Step,
    op=st.sampled_from(OPS),
    key=st.integers(0, KEYS_PER_TASK - 1),
    yields_before=st.integers(0, 3),
    cancel_after=st.one_of(st.none(), st.none(), st.integers(0, 4)),
)
programs = st.builds(
    Program,
    tasks=st.lists(st.lists(steps, min_size=1, max_size=8), min_size=2, max_size=8),
    kill_after=st.one_of(st.none(), st.integers(0, 30), st.integers(0, 8)),
    retries=st.integers(0, 1),
)


@dataclass
class Model:
    #: What each key may hold, as far as its task's answered operations tell.
    possible: dict[str, set[Any]] = field(default_factory=dict)
    #: Writes (None: deletes) whose caller left without an answer -- cancelled, or failed on a lost
    #: or timed-out connection. Such a command may still be on its way on some connection and land
    #: at any later time, after the caller's next operations (as with raw redis-py, whose pool
    #: sends the next command on another connection too), so it stays possible from then on.
    stray: dict[str, set[Any]] = field(default_factory=dict)
    epoch: int = 0  # kills so far

    def of(self, key: str) -> set[Any]:
        return self.possible.setdefault(key, {None}) | self.stray.get(key, set())

    def kill(self) -> None:
        self.epoch += 1
        for key in {*self.possible, *self.stray}:
            self.possible.setdefault(key, {None}).add(None)


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    from .conftest import _require_redis

    _require_redis()
    srv = RedisServer()
    srv.start()
    yield srv
    srv.close()


def fresh(server: RedisServer) -> None:
    """A running server with no data (a previous example may have killed it)."""
    import redis

    if server.proc is None or server.proc.poll() is not None:
        server.start()
    with contextlib.closing(redis.Redis(port=server.port)) as sync:
        sync.flushall()


async def call(cache: YokedCache, step: Step, keys: list[str], value: str) -> Any:
    key = keys[step.key]
    if step.op == "get":
        return await cache.get(key)
    if step.op == "set":
        return await cache.set(key, value)
    if step.op == "set_tagged":
        return await cache.set(key, value, tags=["t", value])
    if step.op == "delete":
        return await cache.delete(key)
    if step.op == "exists":
        return await cache.exists(key)
    other = keys[(step.key + 1) % KEYS_PER_TASK]
    if step.op == "get_many":
        return await cache.get_many([key, other])
    return await cache.set_many({key: value, other: value + "'"})


def check(model: Model, step: Step, keys: list[str], value: str, outcome: str, result: Any, killed: bool) -> None:
    """Compare one operation's outcome with the model, then update the model."""
    key = keys[step.key]
    other = keys[(step.key + 1) % KEYS_PER_TASK]
    writes = {key: value}
    if step.op == "set_many":
        writes[other] = value + "'"
    if outcome != "ok":  # failed or cancelled: a write may land, now or later
        if step.op in ("set", "set_tagged", "set_many"):
            for k, v in writes.items():
                model.stray.setdefault(k, set()).add(v)
        elif step.op == "delete":
            model.stray.setdefault(key, set()).add(None)
        return
    if step.op in ("set", "set_tagged", "set_many"):
        assert result is True
        for k, v in writes.items():
            model.possible[k] = {v, None} if killed else {v}
    elif step.op == "get":
        assert result in model.of(key), f"get({key}) -> {result!r}, model {model.of(key)}"
        model.possible[key] = {result, None} if killed else {result}
    elif step.op == "get_many":
        assert set(result) == {key, other}
        for k in (key, other):
            assert result[k] in model.of(k), f"get_many[{k}] -> {result[k]!r}, model {model.of(k)}"
            model.possible[k] = {result[k], None} if killed else {result[k]}
    elif step.op == "exists":
        present = model.of(key) - {None}
        assert isinstance(result, bool)
        if result:
            assert present, f"exists({key}) -> True, model {model.of(key)}"
            model.possible[key] = present | ({None} if killed else set())
        else:
            assert None in model.of(key), f"exists({key}) -> False, model {model.of(key)}"
            model.possible[key] = {None}
    elif step.op == "delete":
        if result:
            assert model.of(key) - {None}, f"delete({key}) -> True, model {model.of(key)}"
        else:
            assert None in model.of(key), f"delete({key}) -> False, model {model.of(key)}"
        model.possible[key] = {None}


async def run_program(server: RedisServer, program: Program) -> YokedCache:
    model = Model()
    cache = YokedCache(CacheConfig(redis_url=server.url(), fail_open=False, retry_attempts=program.retries,
                                   retry_backoff=0.0, circuit_failure_threshold=2, circuit_recovery_timeout=0.01,
                                   operation_timeout=2.0, enable_metrics=False))  # fmt: skip

    async def task(t: int, program_steps: list[Step]) -> None:
        keys = [f"t{t}k{i}" for i in range(KEYS_PER_TASK)]
        for n, step in enumerate(program_steps):
            value = f"{t}-{n}"
            for _ in range(step.yields_before):
                await asyncio.sleep(0)
            epoch = model.epoch
            result: Any = None
            try:
                if step.cancel_after is None:
                    result = await call(cache, step, keys, value)
                else:
                    running = asyncio.ensure_future(call(cache, step, keys, value))
                    for _ in range(step.cancel_after):
                        await asyncio.sleep(0)
                    running.cancel()
                    result = await running  # it may have finished before the cancel
                outcome = "ok"
            except asyncio.CancelledError:
                outcome = "cancelled"
            except CacheBackendError:  # anything else is a bug and fails the test
                outcome = "failed"
            check(model, step, keys, value, outcome, result, killed=model.epoch != epoch)

    async def killer(turns: int) -> None:
        for _ in range(turns):
            await asyncio.sleep(0)
        server.stop()
        model.kill()
        await asyncio.to_thread(server.start)

    jobs = [task(t, s) for t, s in enumerate(program.tasks)]
    if program.kill_after is not None:
        jobs.append(killer(program.kill_after))
    try:
        await asyncio.wait_for(asyncio.gather(*jobs), 30)  # every caller answered: nothing hangs
        # Finally every key holds a value the model allows (once the breaker lets calls through).
        for t in range(len(program.tasks)):
            for i in range(KEYS_PER_TASK):
                key = f"t{t}k{i}"
                for _ in range(200):
                    try:
                        got = await cache.get(key)
                        break
                    except CacheBackendError:
                        await asyncio.sleep(0.01)
                else:
                    raise AssertionError("the cache did not recover after the server came back")
                assert got in model.of(key), f"final {key} -> {got!r}, model {model.of(key)}"
    finally:
        await cache.close()
    return cache


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(program=programs)
def test_random_interleavings_cancellations_and_a_kill_against_a_model(server, program):
    fresh(server)
    cache = asyncio.run(run_program(server, program))
    pipeliner = cache.backend.pipeliner
    assert pipeliner is not None and pipeliner.batches_in_flight == 0 and not pipeliner._queue
    # what the examples covered (shown by --hypothesis-show-statistics)
    event(f"server killed: {program.kill_after is not None}")
    event(f"operations batched: {pipeliner.batched_operations > 0}")
    event(f"cancellations: {cache.telemetry.counters.cancellations > 0}")
    event(f"failures: {cache.telemetry.counters.error_total > 0}")


def test_the_programs_do_exercise_batches(server):
    """The property above would be vacuous if its interleavings never met in a batch."""
    fresh(server)
    program = Program(
        tasks=[[Step(op, i % KEYS_PER_TASK, 0, None) for i, op in enumerate(OPS)] for _ in range(6)],
        kill_after=None,
        retries=0,
    )
    cache = asyncio.run(run_program(server, program))
    assert cache.backend.pipeliner.batched_operations >= 20
