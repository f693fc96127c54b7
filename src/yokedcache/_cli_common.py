"""What every ``yokedcache`` command needs: the error a user can fix, and a cache built from the
command line with the user's mistakes turned into that error.

A module of its own so that ``bench.py`` (the ``bench`` command) and ``cli.py`` (the others,
and the parser that dispatches to all of them) share it without importing each other.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._urls import default_redis_url, env_redis_url, redact_url
from .config import CacheConfig

__all__ = ["UserError", "build_cache", "build_config", "probe_url", "redis_failed", "redis_url"]


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def redis_url(args: argparse.Namespace) -> str | None:
    """``--redis-url``, else ``$YOKEDCACHE_REDIS_URL``, else ``None``: the in-memory backend (demo, bench)."""
    return args.redis_url or env_redis_url()


def probe_url(args: argparse.Namespace) -> str:
    """The Redis a probe (``health``, ``stats``) checks: ``--redis-url``, else the library's own default.

    Never the in-memory backend: a brand-new in-memory cache is always healthy and empty, so a probe
    of it could never fail. ``backend="redis"`` and the probe therefore read the same URL.
    """
    return args.redis_url or default_redis_url()


async def redis_failed(cache: Any, url: str) -> UserError:
    """The error for a Redis that failed its ping, in the words ``health`` uses for it."""
    reasons = (await cache.detailed_health_check())["reasons"]
    return UserError(f"Redis at {redact_url(url)} failed: {'; '.join(reasons) or 'no answer'}")


def build_config(**kwargs: Any) -> CacheConfig:
    try:
        return CacheConfig(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(str(exc)) from None


def build_cache(config: CacheConfig) -> Any:
    """The cache for ``config``; a URL the backend rejects (redis-py's checks) is a usage error."""
    from .cache import YokedCache  # on first use: --help and --version need none of the cache

    try:
        return YokedCache(config)
    except (TypeError, ValueError) as exc:  # messages name the setting and never hold a password
        raise UserError(str(exc)) from None
