"""yokedcache: an async cache (memory or Redis) whose monitoring is OpenTelemetry-native."""

from __future__ import annotations

from ._version import __version__
from .backends.near_cache import NearCacheConfig
from .cache import YokedCache
from .config import CacheConfig
from .errors import (
    CacheBackendError,
    CacheClosedError,
    CacheCommandError,
    CacheConfigurationError,
    CacheConnectionError,
    CacheTimeoutError,
    CacheUnavailableError,
    CircuitOpenError,
    SerializationError,
    YokedCacheError,
)

__all__ = [
    "CacheBackendError",
    "CacheClosedError",
    "CacheCommandError",
    "CacheConfig",
    "CacheConfigurationError",
    "CacheConnectionError",
    "CacheTimeoutError",
    "CacheUnavailableError",
    "CircuitOpenError",
    "NearCacheConfig",
    "SerializationError",
    "YokedCache",
    "YokedCacheError",
    "__version__",
]
