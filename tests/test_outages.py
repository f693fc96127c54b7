"""Outages speak: one WARNING naming ``host:port`` and the cause in words, one INFO on recovery,
nothing in between; health and the CLI use the same words. Real redis-server processes."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time

import pytest

from yokedcache import CacheConfig, YokedCache

from .redis_server import RedisServer, free_port


def _ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What a user running at INFO sees from yokedcache."""
    return [r for r in caplog.records if r.name.startswith("yokedcache") and r.levelno >= logging.INFO]


def _cache(url: str, **kw: object) -> YokedCache:
    kw.setdefault("retry_attempts", 0)
    kw.setdefault("circuit_recovery_timeout", 0.1)
    kw.setdefault("enable_metrics", False)
    return YokedCache(CacheConfig(redis_url=url, **kw))  # type: ignore[arg-type]


async def _until_a_get_succeeds(cache: YokedCache, deadline: float = 15.0) -> None:
    give_up = time.monotonic() + deadline
    while True:
        await cache.get("k")
        if cache._outage_since is None:
            return
        assert time.monotonic() < give_up, "the cache never recovered"
        await asyncio.sleep(0.05)


async def test_an_outage_logs_one_warning_and_the_recovery_one_info(caplog):
    caplog.set_level(logging.DEBUG, logger="yokedcache")
    server = RedisServer(password="s3cret-pw")
    server.start()
    cache = _cache(server.url())
    try:
        assert await cache.set("k", 1)
        server.stop()
        for _ in range(50):  # retries, breaker opening, half-open trials failing: one line
            assert await cache.get("k", "dflt") == "dflt"
            await asyncio.sleep(0.005)
        records = _ours(caplog)
        assert [r.levelname for r in records] == ["WARNING"], [r.getMessage() for r in records]
        message = records[0].getMessage()
        assert f"127.0.0.1:{server.port}" in message, message
        # the pooled socket sees the close first; a new connect would be refused
        assert "connection closed by the server" in message or "connection refused" in message, message
        assert "returning defaults (fail_open)" in message
        server.start()
        await _until_a_get_succeeds(cache)
        records = _ours(caplog)
        assert [r.levelname for r in records] == ["WARNING", "INFO"], [r.getMessage() for r in records]
        recovered = records[1].getMessage()
        assert f"127.0.0.1:{server.port} recovered after" in recovered and "operations failed" in recovered
        assert "s3cret-pw" not in caplog.text
        for _ in range(20):  # healthy traffic logs nothing
            await cache.get("k")
        assert len(_ours(caplog)) == 2
    finally:
        await cache.close()
        server.close()


async def test_a_flapping_backend_does_not_flood_the_log(caplog):
    """A second outage within a minute of the first WARNING is not announced again."""
    caplog.set_level(logging.INFO, logger="yokedcache")
    server = RedisServer()
    server.start()
    cache = _cache(server.url())
    try:
        for _ in range(3):
            server.stop()
            for _ in range(5):
                await cache.get("k")
            server.start()
            await _until_a_get_succeeds(cache)
        assert [r.levelname for r in _ours(caplog)] == ["WARNING", "INFO"]
    finally:
        await cache.close()
        server.close()


def _hung() -> socket.socket:
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # accepts (kernel backlog), never answers
    return hung


@pytest.mark.parametrize("cause", ["connection refused", "authentication failed", "timed out", "read-only replica"])
async def test_the_warning_and_health_name_the_cause_in_words(cause, caplog):
    caplog.set_level(logging.INFO, logger="yokedcache")
    servers: list[RedisServer] = []
    hung = None
    if cause == "connection refused":
        url = f"redis://127.0.0.1:{free_port()}/0"
    elif cause == "authentication failed":
        servers.append(RedisServer(password="the-right-one"))
        servers[0].start()
        url = f"redis://:wrong-one@127.0.0.1:{servers[0].port}/0"
    elif cause == "timed out":
        hung = _hung()
        url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
    else:
        primary = RedisServer()
        primary.start()
        replica = RedisServer("--replicaof", "127.0.0.1", str(primary.port))
        replica.start()
        servers += [primary, replica]
        url = replica.url()
    cache = _cache(url, operation_timeout=0.3, connect_timeout=0.3, health_check_timeout=0.5)
    try:
        for _ in range(5):
            assert await cache.set("k", 1) is False
        records = _ours(caplog)
        assert len(records) == 1 and records[0].levelname == "WARNING", [r.getMessage() for r in records]
        port = url.rsplit(":", 1)[1].split("/")[0]
        assert f"127.0.0.1:{port}" in records[0].getMessage() and cause in records[0].getMessage()
        assert "wrong-one" not in caplog.text
        report = await cache.detailed_health_check()
        assert any(cause in reason for reason in report["reasons"]), report["reasons"]
    finally:
        await cache.close()
        for s in servers:
            s.close()
        if hung is not None:
            hung.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "yokedcache", *args], capture_output=True, text=True, timeout=60)


def test_cli_health_and_stats_say_authentication_failed_and_pool_not_connected():
    server = RedisServer(password="the-right-one")
    server.start()
    try:
        url = f"redis://:wrong-one@127.0.0.1:{server.port}/0"
        health = _cli("health", "--redis-url", url)
        assert health.returncode == 2
        assert "authentication failed" in health.stdout, health.stdout
        assert "no answer" not in health.stdout
        stats = _cli("stats", "--redis-url", url)
        assert stats.returncode == 2 and "authentication failed" in stats.stderr, stats.stderr
        assert "cannot reach" not in stats.stderr
        assert "wrong-one" not in health.stdout + health.stderr + stats.stdout + stats.stderr
    finally:
        server.close()
    dead = _cli("health", "--redis-url", f"redis://127.0.0.1:{free_port()}/0", "--timeout", "0.5")
    assert "pool: not connected yet" in dead.stdout and "idle" not in dead.stdout, dead.stdout
    assert "connection refused" in dead.stdout


async def test_a_pool_that_never_connected_reports_no_idle_connection():
    cache = _cache(f"redis://127.0.0.1:{free_port()}/0")
    try:
        await cache.get("k")
        pool = (await cache.detailed_health_check())["connection_pool"]
        assert pool["idle"] == 0 and pool["created"] == 0 and pool["in_use"] == 0
    finally:
        await cache.close()
