"""What a security reviewer would try: a password that leaks, pickle from a stranger, a hostile
HTTP client. A sentinel password is searched for everywhere the library writes text."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import socket
import subprocess
import sys
import traceback
import urllib.error
import urllib.request

import pytest
import redis

from yokedcache import CacheConfig, YokedCache
from yokedcache.errors import SerializationError
from yokedcache.monitoring import CacheMetrics, PrometheusCollector

from .redis_server import RedisServer, free_port

SENTINEL = "s3ntinel-PW-9f2c"


@pytest.fixture
def protected_redis():
    from .conftest import _require_redis

    _require_redis()
    server = RedisServer(password=SENTINEL)
    server.start()
    yield server
    server.close()


async def test_a_redis_password_never_appears_anywhere(protected_redis, telemetry, caplog):
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    good_url = protected_redis.url()
    dead_url = f"redis://:{SENTINEL}@127.0.0.1:{free_port()}/0"
    wrong_url = good_url.replace(SENTINEL, SENTINEL + "-wrong")

    collector = PrometheusCollector(port=0)
    metrics = CacheMetrics([collector])
    for url, fail_open in ((good_url, True), (dead_url, True), (dead_url, False), (wrong_url, False)):
        config = CacheConfig(
            redis_url=url, fail_open=fail_open, retry_attempts=0, circuit_failure_threshold=2,
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
        )  # fmt: skip
        cache = YokedCache(config)
        seen += [repr(config), str(config), repr(cache), repr(cache.backend)]
        for _ in range(3):
            try:
                await cache.set("k", {"v": 1}, tags=["t"])
                await cache.get("k")
                await cache.invalidate_tags("t")
            except Exception as exc:  # fail-closed: the exception itself must be clean
                seen += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        seen.append(json.dumps(await cache.detailed_health_check(), default=str))
        seen.append(repr(await cache.get_stats()))
        await cache.close()
    good = YokedCache(CacheConfig(redis_url=good_url, metrics=metrics))
    await good.set("k", 1)

    def fetch(path: str) -> str:  # from a thread: /readyz runs its check on this (the cache's) loop
        with urllib.request.urlopen(collector.url + path, timeout=10) as resp:
            return resp.read().decode()

    readyz = await asyncio.to_thread(fetch, "/readyz")
    assert json.loads(readyz)["status"] == "healthy"
    seen += [readyz, await asyncio.to_thread(fetch, "/metrics")]
    await good.close()
    metrics.shutdown()

    for span in telemetry.spans.get_finished_spans():
        seen.append(json.dumps(dict(span.attributes or {}), default=str))
        seen += [json.dumps(dict(e.attributes or {}), default=str) for e in span.events]
        seen.append(str(span.status.description))
    for points in telemetry.metrics().values():
        seen += [repr(attrs) for attrs, _ in points]
    seen += [r.getMessage() for r in caplog.records] + [caplog.text]

    cli_env = {k: v for k, v in os.environ.items() if k != "YOKEDCACHE_REDIS_URL"}
    for args in (["health", "--redis-url", good_url, "--json"], ["health", "--redis-url", dead_url],
                 ["stats", "--redis-url", good_url], ["demo", "--redis-url", dead_url, "--port", "0"]):  # fmt: skip
        result = subprocess.run([sys.executable, "-m", "yokedcache", *args], capture_output=True, text=True,
                                timeout=60, env=cli_env)  # fmt: skip
        seen += [result.stdout, result.stderr]

    assert len(seen) > 40
    leaks = [text for text in seen if SENTINEL in text]
    assert not leaks, leaks[0][:500]
    assert any("***" in text for text in seen)  # the URL is shown, redacted


async def test_the_default_serializer_never_executes_a_strangers_pickle(redis_url, tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    other_process = redis.Redis.from_url(redis_url)
    other_process.set("yokedcache:session", pickle.dumps(Exploit()))
    other_process.close()
    async with YokedCache(CacheConfig(redis_url=redis_url)) as cache:
        assert cache.config.serializer == "json"
        with pytest.raises(SerializationError):
            await cache.get("session")
    assert not marker.exists()


def test_pickle_is_used_only_when_chosen():
    assert CacheConfig().serializer == "json"
    assert type(YokedCache(CacheConfig(serializer="pickle"))._serializer).__name__ == "PickleSerializer"


def _raw_http(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_metrics_server_answers_only_its_paths_and_methods_with_bounded_requests():
    collector = PrometheusCollector(port=0)
    try:
        assert collector.server is not None and collector.server.addr == "127.0.0.1"  # loopback by default
        port = collector.server.port
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(collector.url + "/../etc/passwd", timeout=5)
        assert info.value.code == 404
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
            request = urllib.request.Request(collector.url + "/metrics", data=b"x" * 10, method=method)
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(request, timeout=5)
            assert info.value.code == 405 and info.value.headers["Allow"] == "GET, HEAD"
        head = urllib.request.Request(collector.url + "/metrics", method="HEAD")
        with urllib.request.urlopen(head, timeout=5) as resp:
            assert resp.status == 200 and resp.read() == b""
        # an oversized request line and a flood of headers are refused, not buffered
        status_line = _raw_http(port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n").split(b"\r\n", 1)[0]
        assert b" 414 " in status_line
        flood = b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n"
        assert b" 431 " in _raw_http(port, flood).split(b"\r\n", 1)[0]
        assert b" 501 " in _raw_http(port, b"BREW /metrics HTTP/1.1\r\n\r\n").split(b"\r\n", 1)[0]
        # and the server still serves afterwards
        with urllib.request.urlopen(collector.url + "/healthz", timeout=5) as resp:
            assert resp.read() == b"ok\n"
    finally:
        collector.close()
