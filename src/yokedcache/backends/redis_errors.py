"""What each redis-py exception means for the cache: retry, open the breaker, or just fail.

The policy (also in docs/operations.md, "Failure behaviour"):

- **transient** -- refused, reset, timed out, pool exhausted, TRYAGAIN: the breaker counts it and
  the facade retries while the breaker is closed.
- **unavailable** -- the server answers but cannot serve us: READONLY (a replica, e.g. just after
  a failover), LOADING, MASTERDOWN, CLUSTERDOWN, BUSY (a script holds the server), a refused
  password, maxclients.
  The breaker counts it (opening sheds load and drops the pooled connections, so recovery
  starts on fresh ones, which Sentinel points at the new primary); no retry.
- **rejected** -- the server refused this one command and is otherwise fine: OOM under
  ``maxmemory``/``noeviction``, WRONGTYPE, NOPERM, NOSCRIPT, EXECABORT. The breaker stays out of
  it (one oversized write must not take reads down); the operation fails and is counted.
- **misconfigured** -- a ``redis+cluster://`` URL pointed at a node without cluster mode: no
  retry or failover can fix it, so it is a configuration error (``CacheConfigurationError``),
  raised whatever ``fail_open`` says, outside the breaker.

Anything else (a bug of ours, cancellation) is not a backend failure and passes through.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
from collections.abc import Callable

from .base import MISCONFIGURED, REJECTED, TRANSIENT, UNAVAILABLE, Failure

__all__ = ["classify_redis_error"]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(seen) < 4 and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _connection_reason(exc: BaseException) -> str:
    """Words for a failure to talk to the server, from the exception and what it chains."""
    for e in _chain(exc):
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        if isinstance(e, socket.gaierror):
            return "host not found"
        if isinstance(e, ConnectionResetError) or getattr(e, "errno", None) == errno.ECONNRESET:
            return "connection reset"
        if isinstance(e, (TimeoutError, asyncio.TimeoutError)) or type(e).__name__ == "TimeoutError":
            return "timed out"
    text = str(exc).lower()
    for needle, words in (
        ("refused", "connection refused"),
        ("error 111", "connection refused"),
        ("name or service not known", "host not found"),
        ("nodename nor servname", "host not found"),
        ("reset", "connection reset"),
        ("timeout", "timed out"),
        ("timed out", "timed out"),
        ("closed by server", "connection closed by the server"),
        ("too many connections", "connection pool exhausted"),
        ("max number of clients", "too many clients (maxclients)"),
    ):
        if needle in text:
            return words
    return "connection failed"


def _code(exc: BaseException) -> str | None:
    code = getattr(exc, "status_code", None)
    if isinstance(code, str) and code:
        return code
    first = str(exc).split(" ", 1)[0]
    return first if first.isalpha() and first.isupper() and len(first) <= 20 else None


def _fixed(kind: str, reason: str, code: str | None = None) -> Callable[[BaseException], Failure]:
    """A rule whose answer does not depend on the exception's text."""
    failure = Failure(kind, reason, code)
    return lambda _exc: failure


def _authentication(exc: BaseException) -> Failure:
    return Failure(UNAVAILABLE, "authentication failed", _code(exc) or "WRONGPASS")


def _authorization(exc: BaseException) -> Failure:
    return Failure(UNAVAILABLE, "not authorized", _code(exc))


def _connection(exc: BaseException) -> Failure:
    reason = _connection_reason(exc)
    return Failure(UNAVAILABLE if reason.startswith("too many clients") else TRANSIENT, reason)


def _refusal(exc: BaseException) -> Failure:
    code = _code(exc)
    if code == "BUSY":
        return Failure(UNAVAILABLE, "server busy running a script", "BUSY")
    if code == "WRONGTYPE":
        return Failure(REJECTED, "wrong type of value stored under the key", code)
    return Failure(REJECTED, "command refused by the server", code)


def _cluster(exc: BaseException) -> Failure:
    text = str(exc).lower()
    if "not enabled" in text or "cluster mode" in text or "cluster support disabled" in text:
        return Failure(MISCONFIGURED, "not a cluster node (cluster mode is not enabled)")
    return Failure(UNAVAILABLE, "cluster unavailable")


def _redis_error(exc: BaseException) -> Failure:
    return Failure(REJECTED, "redis error", _code(exc))


def _socket(exc: BaseException) -> Failure:
    return Failure(TRANSIENT, _connection_reason(exc))


Rule = tuple[tuple[type[BaseException], ...], Callable[[BaseException], Failure]]


@functools.cache
def _table() -> tuple[Rule, ...]:
    """The policy as (exception classes, answer) rows, first match wins: subclasses come before
    their bases (AuthenticationError is a ConnectionError, READONLY a ResponseError). Built on
    first use, because redis-py is imported only when a Redis backend exists."""
    import redis.exceptions as e

    return (
        ((e.AuthenticationError, e.AuthenticationWrongNumberOfArgsError), _authentication),
        ((e.AuthorizationError,), _authorization),
        ((e.BusyLoadingError,), _fixed(UNAVAILABLE, "server is loading its dataset", "LOADING")),
        ((e.ReadOnlyError,), _fixed(UNAVAILABLE, "read-only replica", "READONLY")),
        ((e.MasterDownError,), _fixed(UNAVAILABLE, "primary down", "MASTERDOWN")),
        ((e.ClusterDownError,), _fixed(UNAVAILABLE, "cluster down", "CLUSTERDOWN")),
        ((e.TryAgainError,), _fixed(TRANSIENT, "cluster resharding (try again)", "TRYAGAIN")),
        ((e.MaxConnectionsError,), _fixed(TRANSIENT, "connection pool exhausted")),
        ((e.ConnectionError, e.TimeoutError), _connection),
        ((e.OutOfMemoryError,), _fixed(REJECTED, "out of memory (maxmemory reached)", "OOM")),
        ((e.NoPermissionError,), _fixed(REJECTED, "command not permitted (ACL)", "NOPERM")),
        ((e.NoScriptError,), _fixed(REJECTED, "script not loaded", "NOSCRIPT")),
        ((e.ResponseError,), _refusal),
        ((e.RedisClusterException,), _cluster),
        ((e.ClusterError,), _fixed(UNAVAILABLE, "cluster unavailable")),
        ((e.InvalidResponse,), _fixed(TRANSIENT, "invalid reply (protocol error)")),
        ((e.RedisError,), _redis_error),
        ((OSError, asyncio.TimeoutError), _socket),
    )


def classify_redis_error(exc: BaseException) -> Failure | None:
    """Map a redis-py (or socket) exception to a :class:`Failure`; ``None`` if it is not one."""
    for classes, answer in _table():
        if isinstance(exc, classes):
            return answer(exc)
    return None
