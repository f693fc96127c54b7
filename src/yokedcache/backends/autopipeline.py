"""Auto-pipelining: commands issued in the same event-loop tick share one round trip.

Under concurrency a Python Redis client is bound by its own CPU and by round trips, not by
Redis: each command pays for a pool checkout, a socket write, a read wake-up and a release.
Here a command that finds the pipeliner idle goes out at once, in the caller's own task (a
single task pays nothing for batching). A command issued while others are queued or in flight
joins a queue; at the end of the loop tick the queue leaves as one non-transactional pipeline --
one write, one round trip -- on one connection, and each caller's future receives its own reply
as it is read. The pipeliner's few connections are its own (made by the backend's pool, with its
settings), so a round trip pays neither a pool checkout nor per-command timers.

Rules that make this safe (each tested in ``tests/test_autopipeline.py``):

- replies are matched by position: the connection belongs to the batch until every reply of
  the batch has been read, and the batch runs in its own task, so no caller's cancellation
  can cut a read short and leave the connection out of step;
- a caller cancelled while queued is dropped from the batch (its command is never sent); one
  cancelled in flight has its reply read and discarded;
- a connection error fails exactly the commands of its batch that had not been answered; all
  of them receive the same exception object, which lets the circuit breaker count the batch
  once (see :mod:`yokedcache.resilience`);
- an error reply (``WRONGTYPE``, ``OOM``) fails that caller's operation only;
- a write with tags stays one ``MULTI``/``EXEC`` unit inside the batch, so it is as atomic
  as before.

At most ``max_batches`` batches are in flight at once (each holds one connection while it
runs); commands issued meanwhile wait for the next one. This bounds the connections the hot
path uses to ``max_batches + 1``, whatever the number of callers.

Deadlines are the callers' (``docs/deadlines.md``): each operation's deadline is ``timeout``
seconds after it was issued, wherever it then waits. A batch must be answered by the deadline of
its oldest operation (queues are first in, first out, so that is the earliest of the batch);
an operation whose deadline passes while it is still queued is failed and never sent. So a
caller queued behind stuck batches waits no longer than ``timeout`` in all: the batches ahead
of it fail first (their operations are older), and its own batch inherits its deadline.

The backend knows nothing of telemetry: an optional :class:`BatchObserver` is told about each
batch (the cache's instrumentation records the batch-size histogram and the PIPELINE span).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

if sys.version_info >= (3, 11):
    from asyncio import timeout as _timeout
    from asyncio import timeout_at as _timeout_at
else:  # pragma: no cover - redis-py depends on async-timeout below 3.11
    from async_timeout import timeout as _timeout
    from async_timeout import timeout_at as _timeout_at

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .. import validation
from ._connections import hang_up
from .base import BatchObserver

__all__ = ["AutoPipeliner", "BatchObserver", "ClusterAutoPipeliner", "DirectCommands"]

#: Batches in flight at once. Two let the client build and parse one batch while Redis serves
#: the other; more only splits the same commands into smaller batches (measured: docs/performance.md).
DEFAULT_MAX_BATCHES = 2

Command = tuple[Any, ...]
Parse = Callable[[list[Any]], Any]
#: One caller's operation: its commands, how to turn their replies into its result, its future,
#: what the observer captured when it was queued (the operation's span, or None), and its
#: deadline on the loop's clock (None: no deadline).
Entry = tuple[Sequence[Command], Parse, "asyncio.Future[Any]", Any, "float | None"]


def _expired() -> TimeoutError:
    """The error of operations whose deadline passed before their batch left: never sent.

    Marked as already counted: no round trip failed, so the circuit breaker is not told (the
    batches ahead that held them up are counted, once each; see :mod:`yokedcache.resilience`).
    """
    exc = TimeoutError("Timeout: the operation's deadline passed while it was queued (it was not sent)")
    exc._yokedcache_counted = True  # type: ignore[attr-defined]
    return exc


def _reply(replies: list[Any]) -> Any:
    reply = replies[0]
    if isinstance(reply, Exception):
        raise reply
    return reply


def _nothing(replies: list[Any]) -> None:
    _reply(replies)


def _count(replies: list[Any]) -> int:
    return int(_reply(replies))


def _found(replies: list[Any]) -> bool:
    return bool(_reply(replies))


def _all_ok(replies: list[Any]) -> None:
    """A non-transactional unit (cluster writes): the first error reply fails the operation."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


def _values(replies: list[Any]) -> list[Any]:
    _all_ok(replies)
    return replies


def _total(replies: list[Any]) -> int:
    return sum(int(r) for r in _values(replies))


def _transaction(replies: list[Any]) -> None:
    """Replies of ``MULTI``, each queued command and ``EXEC``, judged as redis-py judges them.

    A command refused while queueing (OOM) makes Redis abort the EXEC: the refusal is the
    error, as redis-py raises it. An error inside EXEC's results fails the operation too.
    """
    *queued, executed = replies
    if isinstance(executed, Exception):
        for reply in queued:
            if isinstance(reply, Exception):
                raise reply from executed
        raise executed
    for reply in queued:
        if isinstance(reply, Exception):
            raise reply
    for reply in executed or ():
        if isinstance(reply, Exception):
            raise reply


def _pack(commands: Iterable[Command], encoder: Any) -> bytes:
    """The commands in the Redis protocol (RESP arrays of bulk strings), in one buffer.

    Our commands hold only str (keys, names), bytes (values) and int arguments, so this is a
    few formatting operations per argument: redis-py's general ``pack_commands`` (which also
    splits multi-word names and chunks large values) cost about 3 µs per command here.
    """
    encoding, errors = encoder.encoding, encoder.encoding_errors
    parts: list[bytes] = []
    append = parts.append
    for command in commands:
        append(b"*%d\r\n" % len(command))
        for arg in command:
            if type(arg) is str:
                arg = arg.encode(encoding, errors)
            elif type(arg) is int:
                arg = b"%d" % arg
            append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(parts)


def _drop_expired(queue: list[Entry], now: float) -> list[Entry]:
    """The entries of ``queue`` still to send: those whose deadline passed are failed (one
    error object for all of them), cancelled ones dropped."""
    kept: list[Entry] = []
    error: TimeoutError | None = None
    for entry in queue:
        future, deadline = entry[2], entry[4]
        if future.done():
            continue
        if deadline is not None and deadline <= now:
            if error is None:
                error = _expired()
            future.set_exception(error)
            continue
        kept.append(entry)
    return kept


async def _value(value: Any) -> Any:
    return value


async def _read_replies(connection: Any, count: int) -> list[Any]:
    """``count`` replies; an error reply is kept in its place (it fails its own operation only)."""
    read = connection.read_response
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(await read())
        except ResponseError as exc:
            replies.append(exc)
    return replies


class _Recorder:
    """Stands in for a redis-py pipeline so the backend's own code lists a write's commands."""

    __slots__ = ("commands",)

    def __init__(self) -> None:
        self.commands: list[Command] = []

    def set(self, key: str, value: bytes, px: int | None = None) -> None:
        self.commands.append(("SET", key, value) if px is None else ("SET", key, value, "PX", px))

    def sadd(self, tag: str, key: str) -> None:
        self.commands.append(("SADD", tag, key))

    def persist(self, tag: str) -> None:
        self.commands.append(("PERSIST", tag))

    def expire(self, tag: str, seconds: int, nx: bool = False, gt: bool = False) -> None:
        flag = ("NX",) if nx else ("GT",) if gt else ()
        self.commands.append(("EXPIRE", tag, seconds, *flag))


class PipelinedBackend(Protocol):
    """What the pipeliner uses of its backend (``redis.py`` and its Cluster and Sentinel flavours).

    Declared here rather than imported: ``redis.py`` imports this module to build its pipeliner,
    and a type-only import back would be a cycle (``tests/test_import_graph.py``). The members are
    public on ``RedisBackend``: the pipeliner is another module's code, so it uses no private member.
    """

    @property
    def pool(self) -> Any:
        """Makes the batch connections, with the backend's settings (``None`` on a cluster: a
        pool per node, and the cluster client's pipelines route by node instead)."""

    @property
    def client(self) -> Any:
        """The redis-py client (a cluster's lone commands and batches go through it)."""

    def queue_set(self, pipe: Any, key: str, value: bytes, ttl: float | None, tags: Sequence[str]) -> None:
        """Queue one write's SET and SADDs on ``pipe``: the same commands as without pipelining."""

    def queue_tag_expiry(self, pipe: Any, ttl: float | None, tags: Sequence[str]) -> None:
        """Queue the tag sets' EXPIRE (or PERSIST) that keeps them alive as long as their keys."""


class AutoPipeliner:
    """Auto-pipelining for one :class:`~yokedcache.backends.redis.RedisBackend` (or Sentinel).

    Its ``get``, ``set``, ``set_many``, ``delete``, ``exists`` and ``get_many`` have the
    backend's signatures; the backend installs them in place of its own.
    """

    #: Writes with tags (and set_many) are MULTI/EXEC units: atomic, as without pipelining.
    transactional_writes = True

    def __init__(self, backend: PipelinedBackend, *, max_batches: int = DEFAULT_MAX_BATCHES) -> None:
        validation.number("max_batches", max_batches, rule="must be a positive int", integer=True, minimum=1)
        self._backend = backend
        self.max_batches = max_batches
        self.observer: BatchObserver | None = None
        pool = backend.pool  # None on a cluster: a pool per node
        #: Each operation's deadline, in seconds from when it was issued (queue wait included).
        #: The cache sets its operation_timeout here; a backend used alone keeps its pool's
        #: socket timeout.
        self.timeout: float | None = pool.connection_kwargs.get("socket_timeout") if pool is not None else None
        self._queue: list[Entry] = []
        self._scheduled = False
        #: Batches in flight, and lone commands sent directly and not yet answered.
        self.batches_in_flight = 0
        self._direct = 0
        self._tasks: set[asyncio.Task[None]] = set()
        #: The batch connections (see _execute): all of them, and those not in a batch now.
        self._connections: list[Any] = []
        self._free: list[Any] = []
        self._closed = False
        #: Totals since start (for tests and the benchmark): batches sent and operations in them.
        self.batches = 0
        self.batched_operations = 0

    # -- the operations --------------------------------------------------------------------
    # Plain functions returning an awaitable, not coroutines: a queued operation hands its caller
    # the future itself, so the batched path adds no coroutine frame per call.
    def get(self, key: str) -> Awaitable[bytes | None]:
        return self._call((("GET", key),), _reply)

    def set(self, key: str, value: bytes, ttl: float | None, tags: Sequence[str] = ()) -> Awaitable[None]:
        if tags:
            return self._call(*self._write_unit(((key, value),), ttl, tags))
        command = ("SET", key, value) if ttl is None else ("SET", key, value, "PX", max(1, int(ttl * 1000)))
        return self._call((command,), _nothing)

    def set_many(
        self, items: Sequence[tuple[str, bytes]], ttl: float | None, tags: Sequence[str] = ()
    ) -> Awaitable[None]:
        if not items:
            return _value(None)
        return self._call(*self._write_unit(items, ttl, tags))

    def delete(self, keys: Sequence[str]) -> Awaitable[int]:
        if not keys:
            return _value(0)
        return self._call(*self._delete_unit(keys))

    def exists(self, key: str) -> Awaitable[bool]:
        return self._call((("EXISTS", key),), _found)

    def get_with_ttl(self, key: str) -> Awaitable[list[Any]]:
        """GET and PTTL as one unit: a near cache's fill (backends/near_cache.py)."""
        return self._call((("GET", key), ("PTTL", key)), _values)

    def get_many(self, keys: Sequence[str]) -> Awaitable[list[bytes | None]]:
        if not keys:
            return _value([])
        return self._call(*self._get_many_unit(keys))

    def _get_many_unit(self, keys: Sequence[str]) -> tuple[Sequence[Command], Parse]:
        return (("MGET", *keys),), _reply

    def _delete_unit(self, keys: Sequence[str]) -> tuple[Sequence[Command], Parse]:
        return (("UNLINK", *keys),), _count

    def _write_unit(
        self, items: Sequence[tuple[str, bytes]], ttl: float | None, tags: Sequence[str]
    ) -> tuple[Sequence[Command], Parse]:
        """The backend's own code lists the commands (SET, SADD, EXPIRE NX/GT or PERSIST)."""
        recorder = _Recorder()
        backend = self._backend
        for key, value in items:
            backend.queue_set(recorder, key, value, ttl, tags)
        backend.queue_tag_expiry(recorder, ttl, tags)
        if self.transactional_writes:
            return [("MULTI",), *recorder.commands, ("EXEC",)], _transaction
        return recorder.commands, _all_ok

    def _call(self, commands: Sequence[Command], parse: Parse) -> Awaitable[Any]:
        """A lone operation goes out at once, in the caller's own task; one issued while others
        are queued or in flight waits for the end of the tick and leaves with them."""
        if self._queue or self.batches_in_flight or self._direct:
            return self._submit(commands, parse)
        return self._alone(commands, parse)

    async def _alone(self, commands: Sequence[Command], parse: Parse) -> Any:
        self._direct += 1
        try:
            replies = await self._lone(commands)
        finally:
            self._direct -= 1
        return parse(replies)

    # -- queueing and batches --------------------------------------------------------------
    def _submit(self, commands: Sequence[Command], parse: Parse) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        observer = self.observer
        timeout = self.timeout
        self._queue.append(
            (
                commands,
                parse,
                future,
                observer.pipeline_context() if observer is not None else None,
                None if timeout is None else loop.time() + timeout,
            )
        )
        if not self._scheduled and self.batches_in_flight < self.max_batches:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        """End of the tick: everything queued leaves as one batch (cancelled callers dropped,
        callers whose deadline passed failed without being sent)."""
        self._scheduled = False
        queue, self._queue = self._queue, []
        if not queue:
            return
        loop = asyncio.get_running_loop()
        oldest = queue[0][4]  # first in, first out: no later entry has an earlier deadline
        if oldest is not None and oldest <= loop.time():
            entries = _drop_expired(queue, loop.time())
        else:
            entries = [entry for entry in queue if not entry[2].done()]
        if not entries:
            return
        self.batches_in_flight += 1
        task = loop.create_task(self._run(entries))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, entries: list[Entry]) -> None:
        observer = self.observer
        token = None
        error: BaseException | None = None
        self.batches += 1
        self.batched_operations += len(entries)
        try:
            if observer is not None:
                token = observer.pipeline_started(
                    len(entries), sum(len(e[0]) for e in entries), [e[3] for e in entries]
                )
            await self._execute(entries)
        except asyncio.CancelledError as exc:  # the loop is shutting down: callers are cancelled too
            error = exc
            for entry in entries:
                entry[2].cancel()
            raise
        except Exception as exc:
            error = exc
            for entry in entries:
                if not entry[2].done():
                    entry[2].set_exception(exc)  # one object for the batch: the breaker counts it once
        finally:
            self.batches_in_flight -= 1
            if self._queue and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)
            if observer is not None:
                try:
                    observer.pipeline_finished(token, error)
                except Exception:  # telemetry must never break the batch
                    pass

    async def _execute(self, entries: list[Entry]) -> None:
        """Send every entry's commands in one write on one connection, then read the replies,
        by the deadline of the oldest entry (the first)."""
        connection = self._checkout()
        try:
            async with _timeout_at(entries[0][4]):
                if not connection.is_connected:
                    await connection.connect()  # the class's own connect: Sentinel asks for the primary
                await connection.send_packed_command(
                    _pack([c for entry in entries for c in entry[0]], connection.encoder), check_health=False
                )
                read = connection.read_response
                for commands, parse, future, _, _ in entries:
                    if len(commands) == 1:  # most operations: no coroutine of ours per reply
                        try:
                            replies = [await read()]
                        except ResponseError as exc:
                            replies = [exc]
                    else:
                        replies = await _read_replies(connection, len(commands))
                    if future.done():  # the caller was cancelled while its command was in flight
                        continue
                    try:
                        future.set_result(parse(replies))
                    except Exception as exc:
                        future.set_exception(exc)
        except (TimeoutError, asyncio.TimeoutError):  # one class from Python 3.11 on
            # the deadline's own TimeoutError, as the guard raises it for a single command
            await self._checkin(connection, failed=True)
            raise TimeoutError("Timeout reading an auto-pipelined batch") from None
        except BaseException:
            await self._checkin(connection, failed=True)
            raise
        await self._checkin(connection, failed=False)

    async def _lone(self, commands: Sequence[Command]) -> list[Any]:
        """One operation's round trip in the caller's own task, on a pipeliner connection.

        A cancelled caller leaves the connection out of step (a reply may be on its way), so
        any failure here hangs it up; the next round trip reconnects.
        """
        connection = self._checkout()
        try:
            async with _timeout(self.timeout):
                if not connection.is_connected:
                    await connection.connect()
                await connection.send_packed_command(_pack(commands, connection.encoder), check_health=False)
                replies = await _read_replies(connection, len(commands))
        except (TimeoutError, asyncio.TimeoutError):  # one class from Python 3.11 on
            await self._checkin(connection, failed=True)
            raise TimeoutError("Timeout reading from the server") from None
        except BaseException:
            await self._checkin(connection, failed=True)
            raise
        await self._checkin(connection, failed=False)
        return replies

    def _checkout(self) -> Any:
        """A pipeliner connection: made by the backend's pool with its settings but without a
        per-read socket timeout, because one deadline (the socket timeout a single command
        would have had) covers each round trip instead. That saves a pool checkout and two
        timers per round trip. There are at most ``max_batches + 1`` of them."""
        if self._free:
            return self._free.pop()
        connection = self._backend.pool.make_connection()
        connection.socket_timeout = None
        self._connections.append(connection)
        return connection

    async def _checkin(self, connection: Any, *, failed: bool) -> None:
        if not self._closed:
            self._free.append(connection)  # first: a cancellation below must not lose it
        if failed or self._closed:
            await connection.disconnect(nowait=True)

    # -- connections ------------------------------------------------------------------------
    @property
    def connections(self) -> int:
        """Batch connections open now (the backend's pool figures add them)."""
        return sum(1 for c in self._connections if c.is_connected)

    async def drop_idle_connections(self) -> None:
        """Hang up batch connections not in a batch (after an outage they point at a dead server)."""
        for connection in tuple(self._free):
            await connection.disconnect(nowait=True)

    def abandon_connections(self) -> None:
        """Shut down every batch socket without its event loop (see RedisBackend)."""
        hang_up(self._connections)

    async def close(self) -> None:
        """Let batches in flight finish (the cache drained its callers first), then hang up."""
        self._closed = True
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
        for connection in self._connections:
            await connection.disconnect(nowait=True)
        self._connections.clear()
        self._free.clear()


class DirectCommands(AutoPipeliner):
    """``auto_pipeline=False``: every operation is a lone round trip in its caller's task.

    It goes out on a connection of its own, never shared and never batched, by the pipeliner's
    lone path: the same packing and reply reading, with no pool checkout and no pass through
    redis-py's client layer. That path costs less than redis-py's own command path, which is
    what raw redis-py pays. The caller (the cache's guard) admits at most ``max_connections``
    operations at once and holds their deadline. A backend used alone gets redis-py's error
    beyond ``limit`` connections, as from its pool.
    """

    def __init__(self, backend: PipelinedBackend, *, limit: int) -> None:
        super().__init__(backend)
        self.limit = limit

    @property
    def in_use(self) -> int:
        """Connections carrying an operation now (the backend's pool figures add them)."""
        return len(self._connections) - len(self._free)

    @property
    def idle(self) -> int:
        return sum(1 for c in self._free if c.is_connected)

    def _call(self, commands: Sequence[Command], parse: Parse) -> Awaitable[Any]:
        return self._alone(commands, parse)

    def _checkout(self) -> Any:
        if not self._free and len(self._connections) >= self.limit:
            raise RedisConnectionError("Too many connections")
        return super()._checkout()


class ClusterAutoPipeliner(AutoPipeliner):
    """Redis Cluster: each batch is a cluster pipeline, which groups the commands by node
    (one write per node, the nodes in parallel) and follows MOVED/ASK redirections.

    Keys and tag sets live in different slots, so writes are non-transactional units (as
    without pipelining on a cluster) and ``get_many`` becomes one GET per key.
    """

    transactional_writes = False

    def _get_many_unit(self, keys: Sequence[str]) -> tuple[Sequence[Command], Parse]:
        return tuple(("GET", key) for key in keys), _values

    def _delete_unit(self, keys: Sequence[str]) -> tuple[Sequence[Command], Parse]:
        return tuple(("UNLINK", key) for key in keys), _total

    async def _lone(self, commands: Sequence[Command]) -> list[Any]:
        try:
            async with _timeout(self.timeout):
                return await self._cluster_lone(commands)
        except (TimeoutError, asyncio.TimeoutError):
            raise TimeoutError("Timeout reading from the cluster") from None

    async def _cluster_lone(self, commands: Sequence[Command]) -> list[Any]:
        client = self._backend.client
        if len(commands) == 1:
            try:
                return [await client.execute_command(*commands[0])]
            except ResponseError as exc:
                return [exc]
        pipe = client.pipeline()
        for command in commands:
            pipe.execute_command(*command)
        return await pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]

    async def _execute(self, entries: list[Entry]) -> None:
        pipe = self._backend.client.pipeline()
        for entry in entries:
            for command in entry[0]:
                pipe.execute_command(*command)
        try:
            async with _timeout_at(entries[0][4]):
                replies = await pipe.execute(raise_on_error=False)
        except (TimeoutError, asyncio.TimeoutError):
            raise TimeoutError("Timeout reading an auto-pipelined batch from the cluster") from None
        if len(replies) != sum(len(e[0]) for e in entries):  # never expected; fail loudly, not wrongly
            raise RuntimeError("cluster pipeline returned a reply count that does not match its commands")
        # A node that could not be reached fails its commands with one exception each: make it one
        # object for the batch, so the breaker counts the batch once, as on a single server.
        lost = next((r for r in replies if isinstance(r, (RedisConnectionError, RedisTimeoutError))), None)
        if lost is not None:
            replies = [lost if isinstance(r, (RedisConnectionError, RedisTimeoutError)) else r for r in replies]
        position = 0
        for commands, parse, future, _, _ in entries:
            own = replies[position : position + len(commands)]
            position += len(commands)
            if future.done():
                continue
            try:
                future.set_result(parse(own))
            except Exception as exc:
                future.set_exception(exc)
