"""Storage backends. The Redis ones are imported lazily so the core runs without ``redis``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Backend, BackendInfo, Usage
from .memory import MemoryBackend

if TYPE_CHECKING:
    from .redis import RedisBackend
    from .redis_cluster import RedisClusterBackend
    from .redis_sentinel import RedisSentinelBackend

__all__ = [
    "Backend",
    "BackendInfo",
    "MemoryBackend",
    "RedisBackend",
    "RedisClusterBackend",
    "RedisSentinelBackend",
    "Usage",
]

_LAZY = {"RedisBackend": ".redis", "RedisClusterBackend": ".redis_cluster", "RedisSentinelBackend": ".redis_sentinel"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
