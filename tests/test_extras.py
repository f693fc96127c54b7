"""A feature whose extra is missing names the extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_core_imports_without_redis_or_sdk():
    code = (
        "import sys\n"
        "for m in ('redis', 'opentelemetry.sdk', 'statsd', 'prometheus_client'): sys.modules[m] = None\n"
        "import asyncio, yokedcache\n"
        "async def main():\n"
        "    async with yokedcache.YokedCache() as c:\n"
        "        await c.set('k', 1); assert await c.get('k') == 1\n"
        "asyncio.run(main())\n"
        "assert 'redis.asyncio' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_redis_backend_without_redis_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    from yokedcache.backends.redis import RedisBackend

    with pytest.raises(ImportError, match=r"pip install 'yokedcache-otel\[redis\]'"):
        RedisBackend("redis://localhost:6379/0")


def test_instrumentor_without_opentelemetry_instrumentation_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['opentelemetry.instrumentation'] = None\n"
        "try:\n"
        "    import yokedcache.instrumentor\n"
        "except ImportError as exc:\n"
        '    assert "yokedcache-otel[instrumentor]" in str(exc), exc\n'
        "else:\n"
        "    raise SystemExit('imported without opentelemetry-instrumentation')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
