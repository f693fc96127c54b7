"""Exceptions raised by yokedcache.

Connection problems subclass the builtin :class:`ConnectionError`, so application code written
as ``except ConnectionError`` (as in docs/monitoring.md, 'Error Rate Monitoring') keeps working whatever backend runs.
Every failure of the backend itself is a :class:`CacheBackendError`: that is what ``fail_open``
turns into a default value, and what ``fail_open=False`` raises, with the driver's own
exception chained as ``__cause__``.
"""

from __future__ import annotations


class YokedCacheError(Exception):
    """Base class of every error yokedcache raises on purpose."""


class CacheBackendError(YokedCacheError):
    """The backend failed an operation (unreachable, unable to serve, or it refused the command).

    ``reason`` says why in words ("connection refused", "read-only replica", ...); ``code`` is
    the server's error prefix when it sent one (``READONLY``, ``OOM``, ``WRONGTYPE``).
    """

    def __init__(self, message: str = "", *, reason: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.code = code


class CacheConnectionError(CacheBackendError, ConnectionError):
    """The backend could not be reached (refused, reset, timed out, or the breaker is open)."""


class CacheTimeoutError(CacheConnectionError, TimeoutError):
    """The backend did not answer within the configured operation timeout."""


class CircuitOpenError(CacheConnectionError):
    """The circuit breaker is open: the call failed fast without touching the network."""


class CacheUnavailableError(CacheConnectionError):
    """The server answered but cannot serve now: a read-only replica, still loading its data,
    its primary is down, busy running a script, or it refused our credentials."""


class CacheCommandError(CacheBackendError):
    """The server refused this one command (out of memory, wrong type, ...); it is otherwise up."""


class CacheConfigurationError(YokedCacheError, ValueError):
    """The server reached cannot serve what the configuration asks of it: a ``redis+cluster://``
    URL pointed at a node without cluster mode. Found at the first contact (the first operation,
    ``connect()`` or a health check); raised whatever ``fail_open`` says, since no retry can fix
    it, and the breaker stays out of it. The driver's exception is chained as ``__cause__``."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.code: str | None = None


class CacheClosedError(YokedCacheError, RuntimeError):
    """The cache was closed: it opens no new connections. Create a new cache instead."""


class SerializationError(YokedCacheError, TypeError):
    """A value could not be serialised (on set) or deserialised (on get)."""


def original_error(exc: BaseException) -> BaseException:
    """The driver's exception behind one of ours: what ``error.type`` names (OTel semconv)."""
    if isinstance(exc, (CacheBackendError, CacheConfigurationError)) and exc.__cause__ is not None:
        return exc.__cause__
    return exc
