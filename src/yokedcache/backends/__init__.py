"""Storage backends. ``RedisBackend`` is imported lazily so the core runs without ``redis``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Backend, BackendInfo, Usage
from .memory import MemoryBackend

if TYPE_CHECKING:
    from .redis import RedisBackend
    from .redis_cluster import RedisClusterBackend

__all__ = ["Backend", "BackendInfo", "MemoryBackend", "RedisBackend", "RedisClusterBackend", "Usage"]


def __getattr__(name: str) -> Any:
    if name == "RedisBackend":
        from .redis import RedisBackend

        return RedisBackend
    if name == "RedisClusterBackend":
        from .redis_cluster import RedisClusterBackend

        return RedisClusterBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
