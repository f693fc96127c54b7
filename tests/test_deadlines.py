"""``operation_timeout`` is a caller's deadline (docs/deadlines.md), under real server stalls.

Each stall (``DEBUG SLEEP`` or SIGSTOP of a private redis-server, for 2, 4 or 6 s) serves every
caller group at once: 1, 10 and 500 concurrent callers, on ``retry_attempts`` 0 and 1, with
auto-pipelining on and off -- twelve caches on the one stalled server. Every caller's time, from
entering ``get``/``set`` to its fail-open answer, must stay within the documented bound plus
50 ms: ``(retry_attempts + 1) * operation_timeout`` plus the longest back-offs; plus, measured,
any time other processes kept this one off the CPU (``Scheduling``: about 0 on an idle machine).

The groups start at staggered offsets into the stall, so that the 2,000 callers' deadlines do not
all fall in the same instant (one loop would then spend the tolerance waking them); each caller's
clock starts when it enters. Six stalls, about 25 s in all.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis

from yokedcache import CacheConfig, YokedCache
from yokedcache.resilience import worst_case_call_seconds

from .redis_server import RedisServer

pytestmark = pytest.mark.timeout(90)

TIMEOUT = 1.0  # operation_timeout (the default)
BACKOFF = 0.02  # retry_backoff (the default)
TOLERANCE = 0.05
CALLERS = (1, 10, 500)


@pytest.fixture
def private_server() -> Iterator[RedisServer]:
    """A server of this test's own: it is stopped and put to sleep."""
    server = RedisServer("--enable-debug-command", "yes")  # Redis 7 refuses DEBUG by default
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        os.kill(server.proc.pid, signal.SIGCONT)  # never leave it stopped
    server.close()


@dataclass
class Group:
    callers: int
    retries: int
    pipelined: bool
    cache: YokedCache
    elapsed: list[float] = field(default_factory=list)
    answered: list[bool] = field(default_factory=list)

    @property
    def bound(self) -> float:
        return worst_case_call_seconds(TIMEOUT, self.retries, BACKOFF)

    def __str__(self) -> str:
        return f"{self.callers} callers, retry_attempts={self.retries}, auto_pipeline={self.pipelined}"


async def run_group(group: Group, start_at: float) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start_at - loop.time()))

    async def caller(i: int) -> None:
        started = time.perf_counter()
        if i % 2:
            answered = await group.cache.set(f"k{i}", i)
        else:
            answered = await group.cache.get(f"k{i}") == "warm"
        group.elapsed.append(time.perf_counter() - started)
        group.answered.append(bool(answered))

    await asyncio.gather(*(caller(i) for i in range(group.callers)))


class Scheduling:
    """How much of the stall this process was kept off the CPU by other processes.

    Every 10 ms a heartbeat compares how late the loop woke with the CPU this process used
    meanwhile: a loop that is late because the cache is working used that CPU; a loop that is
    late while the process hardly ran was waiting for the machine. ``stolen`` sums the latter
    (beyond 5 ms per beat). On an idle machine (CI) it is about 0 and the bound is the
    formula + 50 ms exactly; on a machine shared by other engineers' test runs the time taken
    from this process is added back, measured, instead of failing on it.
    """

    def __init__(self) -> None:
        self.stolen = self.worst_late = self.worst_ran = 0.0

    async def heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, cpu = loop.time() + 0.01, time.process_time()
            await asyncio.sleep(0.01)
            late, ran = loop.time() - due, time.process_time() - cpu
            self.stolen += max(0.0, late - ran - 0.005)
            if late > self.worst_late:
                self.worst_late, self.worst_ran = late, ran

    def __str__(self) -> str:
        return (f"(the loop was up to {self.worst_late * 1e3:.0f} ms late, while this process ran for "
                f"{self.worst_ran * 1e3:.0f} ms of it; {self.stolen * 1e3:.0f} ms kept off the CPU in all; "
                f"load average {os.getloadavg()[0]:.1f})")  # fmt: skip


def offsets(groups: list[Group]) -> list[float]:
    """When each group starts, after the stall began: the 500-caller groups 250 ms apart, the
    small ones 100 ms clear of them. One event loop serves every group, and waking 500 callers
    at their deadline takes it tens of milliseconds: spread out, no group's deadline waits
    behind another group's wake-up."""
    big = iter((0.0, 0.25, 0.5, 0.75))
    small = iter((0.1, 0.13, 0.35, 0.38, 0.6, 0.63, 0.85, 0.88))
    return [next(big) if g.callers >= 100 else next(small) for g in groups]


def answers(port: int) -> bool:
    """Whether the server answers a PING within 20 ms."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.02) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def stall(server: RedisServer, how: str, seconds: float) -> float:
    """Stall the server for ``seconds``; returns (once it has stopped answering) when it began."""
    assert server.proc is not None
    began = time.monotonic()
    if how == "sigstop":
        os.kill(server.proc.pid, signal.SIGSTOP)
    else:
        # DEBUG SLEEP from a connection of its own; the sleep goes on after it hangs up
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            arg = str(seconds).encode()
            sock.sendall(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$%d\r\n%s\r\n" % (len(arg), arg))
    deadline = began + 2
    while answers(server.port):  # poll until it stops answering
        assert time.monotonic() < deadline, "the server did not stall"
    return began


@pytest.mark.parametrize("how", ["debug_sleep", "sigstop"])
@pytest.mark.parametrize("seconds", [2, 4, 6])
async def test_no_caller_waits_past_its_deadline_during_a_stall(private_server: RedisServer, how: str, seconds: int):
    url = private_server.url()
    groups = [
        Group(n, retries, pipelined, YokedCache(CacheConfig(redis_url=url, operation_timeout=TIMEOUT,
              retry_attempts=retries, retry_backoff=BACKOFF, auto_pipeline=pipelined, enable_tracing=False)))
        for n in CALLERS for retries in (0, 1) for pipelined in (True, False)
    ]  # fmt: skip
    for group in groups:  # every key holds "warm", and connections are open before the stall
        assert await group.cache.set_many({f"k{i}": "warm" for i in range(group.callers)})
        assert await group.cache.get("k0") == "warm"
    loop = asyncio.get_running_loop()
    # The test process's heap (pytest, every module it imported) is frozen out of the collector:
    # a full collection of it stalls this loop for 30-100 ms here, which measures pytest, not
    # the cache. The cache's own garbage is still collected as usual.
    gc.collect()
    gc.freeze()
    try:
        # the loop's clock is time.monotonic(): the stall began at ``began`` on it
        began = stall(private_server, how, seconds)
        if how == "sigstop":
            loop.call_at(began + seconds, os.kill, private_server.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
        starts = offsets(groups)
        watch = Scheduling()
        beat = asyncio.create_task(watch.heartbeat())
        await asyncio.gather(*(run_group(g, began + offset) for g, offset in zip(groups, starts, strict=True)))
        beat.cancel()
    finally:
        gc.unfreeze()
    for group in groups:
        await group.cache.close()

    for group, start in zip(groups, starts, strict=True):
        assert len(group.elapsed) == group.callers
        worst = max(group.elapsed)
        print(f"{how} {seconds} s, {group}: worst {worst:.3f} s, bound {group.bound:.3f} s")
        # the allowance for a loaded machine is bounded: more than 0.25 s kept off the CPU during one
        # stall is no longer "load", and on an idle machine (CI) it is about 0
        assert watch.stolen < 0.25, f"the machine kept this process off the CPU too long to judge: {watch}"
        allowed = group.bound + TOLERANCE + watch.stolen
        assert worst <= allowed, f"{group}: the worst caller took {worst:.3f} s, bound {group.bound} s {watch}"
        if group.retries == 0 and start + TIMEOUT + 0.1 < seconds:  # the whole call inside the stall
            assert not any(group.answered), f"{group}: a caller was answered during a {seconds} s stall"
            # ... and none of them gave up early either: each waited for its deadline (a batch is due
            # by its oldest operation's, so those issued later in the same loop turn may end up to
            # one turn sooner: 500 callers issuing their commands make a turn of 10-20 ms here)
            assert min(group.elapsed) >= TIMEOUT - 0.05 - watch.stolen, (
                f"{group}: a caller failed after {min(group.elapsed):.3f} s"
            )
        elif start + group.bound + 0.1 < seconds:  # retried, and still inside the stall
            assert not any(group.answered), f"{group}: a caller was answered during a {seconds} s stall"
    # the server is back (once the stall is over: SIGCONT comes from this loop) and serves again
    await asyncio.sleep(max(0.0, began + seconds - loop.time()))
    client = redis.Redis.from_url(url)
    try:
        assert client.ping()
    finally:
        client.close()


async def test_a_queued_caller_whose_deadline_passed_is_never_sent(redis_url: str):
    """The loop is blocked past the queued callers' deadline before their batch could leave: they
    fail (fail-open: False) without their SET ever reaching Redis."""
    cache = YokedCache(CacheConfig(redis_url=redis_url, operation_timeout=0.2, retry_attempts=0))
    client = redis.Redis.from_url(redis_url)
    try:
        assert await cache.set("warm", 1)
        client.config_resetstat()
        tasks = [asyncio.ensure_future(cache.set(f"q{i}", i)) for i in range(10)]
        await asyncio.sleep(0)  # each task issues its SET: the first goes out alone, nine queue
        time.sleep(0.3)  # the fault: the loop is blocked past their deadline before the batch leaves
        results = await asyncio.gather(*tasks)
        # every deadline passed (the lone one's too, though its SET was sent before the block)
        assert results == [False] * 10
        assert client.exists(*[f"yokedcache:q{i}" for i in range(1, 10)]) == 0
        stats = client.info("commandstats")
        assert stats["cmdstat_set"]["calls"] == 1, stats
    finally:
        client.close()
        await cache.close()


def test_the_documented_bound():
    """docs/deadlines.md's formula: attempts times the timeout, plus the longest back-offs."""
    assert worst_case_call_seconds(1.0, 0, 0.02) == 1.0
    assert worst_case_call_seconds(1.0, 1, 0.02) == pytest.approx(2.03)
    assert worst_case_call_seconds(0.5, 3, 0.1) == pytest.approx(4 * 0.5 + 1.5 * 0.1 * (1 + 2 + 4))
