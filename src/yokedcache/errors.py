"""Exceptions raised by yokedcache.

Connection problems subclass the builtin :class:`ConnectionError`, so application code written
as ``except ConnectionError`` (as in the monitoring guide) keeps working whatever backend runs.
"""

from __future__ import annotations


class YokedCacheError(Exception):
    """Base class of every error yokedcache raises on purpose."""


class CacheConnectionError(YokedCacheError, ConnectionError):
    """The backend could not be reached (refused, reset, timed out, or the breaker is open)."""


class CacheTimeoutError(CacheConnectionError, TimeoutError):
    """The backend did not answer within the configured operation timeout."""


class CircuitOpenError(CacheConnectionError):
    """The circuit breaker is open: the call failed fast without touching the network."""


class SerializationError(YokedCacheError, TypeError):
    """A value could not be serialised (on set) or deserialised (on get)."""
