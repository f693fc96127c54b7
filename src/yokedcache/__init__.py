"""yokedcache: an async cache (memory or Redis) whose monitoring is OpenTelemetry-native."""

from __future__ import annotations

from ._version import __version__
from .cache import YokedCache
from .config import CacheConfig
from .errors import (
    CacheConnectionError,
    CacheTimeoutError,
    CircuitOpenError,
    SerializationError,
    YokedCacheError,
)

__all__ = [
    "CacheConfig",
    "CacheConnectionError",
    "CacheTimeoutError",
    "CircuitOpenError",
    "SerializationError",
    "YokedCache",
    "YokedCacheError",
    "__version__",
]
