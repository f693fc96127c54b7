"""The ``yokedcache`` command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .redis_server import free_port


def cli(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "YOKEDCACHE_REDIS_URL"}
    full_env.update(env)
    return subprocess.run([sys.executable, "-m", "yokedcache", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env)  # fmt: skip


def test_health_exit_codes_follow_the_status(redis_url):
    live = cli("health", "--redis-url", redis_url)
    assert live.returncode == 0, live.stderr
    assert live.stdout.startswith("healthy: redis://127.0.0.1:")
    dead = cli("health", "--redis-url", f"redis://:sentinel-pw@127.0.0.1:{free_port()}/0", "--timeout", "0.5")
    assert dead.returncode == 2
    assert dead.stdout.startswith("unhealthy:") and "backend ping failed" in dead.stdout
    assert "sentinel-pw" not in dead.stdout + dead.stderr


def test_health_json_and_environment_url(redis_url):
    result = cli("health", "--json", YOKEDCACHE_REDIS_URL=redis_url)
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["status"] == "healthy" and report["redis_connected"] is True
    assert report["connection_pool"]["max_connections"] == 50


def test_health_of_a_hung_redis_is_bounded():
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    try:
        started = time.monotonic()
        result = cli("health", "--redis-url", f"redis://127.0.0.1:{hung.getsockname()[1]}/0", "--timeout", "0.5")
        elapsed = time.monotonic() - started
    finally:
        hung.close()
    assert result.returncode == 2 and "timed out" in result.stdout
    assert elapsed < 15  # the interpreter start dominates; the check itself gives up after 0.5 s


def test_stats_counts_the_prefix(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.set("yokedcache:a", b'"x"')
    client.set("other:b", b'"y"')
    client.close()
    result = cli("stats", "--redis-url", redis_url, "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["total_keys"] == 1 and stats["total_memory_bytes"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--redis-url", "http://example.com"], "redis_url: scheme must be one of"),
        (["health", "--redis-url", "redis://:pw@127.0.0.1:1/0", "--timeout", "-1"], "health_check_timeout"),
    ],
)
def test_bad_input_is_one_clear_line(args, message):
    result = cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_demo_reports_a_port_in_use_and_an_unreachable_redis():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = cli("demo", "--port", str(port), "--duration", "1")
    assert result.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in result.stderr
    result = cli(
        "demo", "--port", "0", "--duration", "1", "--redis-url", f"redis://:sentinel-pw@127.0.0.1:{free_port()}/0"
    )
    assert result.returncode == 2 and "Redis at redis://:***@127.0.0.1:" in result.stderr
    assert "failed: backend ping failed: connection refused" in result.stderr
    assert "sentinel-pw" not in result.stderr


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_demo_serves_metrics_and_health_while_it_runs(backend, request):
    port = free_port()
    args = ["demo", "--port", str(port), "--rate", "500"]
    if backend == "redis":
        args += ["--redis-url", request.getfixturevalue("redis_url")]
    proc = subprocess.Popen([sys.executable, "-m", "yokedcache", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        body = ""
        # Traffic, not just the series: a scrape before the first operation shows it at 0.0.
        while not re.search(r'yokedcache_cache_gets_total\{cache_name="[^"]*",result="hit"\} [1-9]', body):
            assert time.monotonic() < deadline, "no traffic in the demo's /metrics"
            time.sleep(0.2)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    body = resp.read().decode()
            except OSError:
                continue
        assert 'yokedcache_cache_operation_duration_seconds_bucket{cache_name="' in body
        assert 'le="0.001",operation="get"}' in body
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
                report = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            report = json.loads(exc.read())
        assert report["status"] == "healthy", report
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean exit with a summary
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "ran " in out and "hit rate" in out and "get " in out
    assert "Traceback" not in err
    # after Ctrl-C: what to try next (Prometheus with the shipped config, the tests, Redis)
    steps = out[out.index("next steps:") :]
    assert "collector-config/prometheus/prometheus.yml" in steps
    assert "make test" in steps and "--redis-url" in steps


def test_demo_with_a_duration_prints_the_live_lines_and_a_summary():
    result = cli("demo", "--port", "0", "--duration", "2", "--rate", "300")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # the status page's URL is the first thing printed, then the other endpoints
    assert re.fullmatch(r"status page http://127\.0\.0\.1:\d+/", lines[0]), lines[0]
    assert lines[1].startswith("yokedcache demo -- in-memory backend -- http://127.0.0.1:")
    # each live line states the rate the cache measured beside the target it was asked for
    assert any(line.startswith("[") and " ops/s (target 300), hit rate" in line for line in lines)
    assert any(line.startswith("ran ") and " ops/s, target 300)" in line for line in lines)


def test_demo_help_states_the_default_rate():
    result = cli("demo", "--help")
    assert result.returncode == 0 and "default 1000" in " ".join(result.stdout.split())


def test_demo_live_view_renders_the_figures():
    import asyncio

    from yokedcache import YokedCache
    from yokedcache.demo import LiveView, Workload

    async def main() -> str:
        async with YokedCache() as cache:
            workload = Workload(cache, rate=0)
            for _ in range(500):
                await workload.step()
            return LiveView(cache, workload, "header").render()

    screen = asyncio.run(main())
    assert screen.splitlines()[0] == "header"
    assert "hit rate" in screen and "keys" in screen and "breaker n/a" in screen
    assert any(line.startswith("get ") and "µs" in line for line in screen.splitlines())


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_bench_runs_for_a_second_and_writes_json(backend, request, tmp_path):
    out_file = tmp_path / "bench.json"
    args = ["bench", "--duration", "1", "--warmup", "50", "--concurrency", "4", "--json", str(out_file)]
    if backend == "redis":
        args += ["--redis-url", request.getfixturevalue("redis_url")]
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    data = json.loads(out_file.read_text())
    results = data["results"]
    assert set(results) == {f"{data['baseline']} GET", f"{data['baseline']} SET", "cache GET", "cache SET"}
    for r in results.values():
        assert r["ops"] >= 100 and r["p50"] <= r["p95"] <= r["p99"]
        # throughput is operations over wall time, never over the slowest single operation
        assert r["throughput"] == pytest.approx(r["ops"] / r["seconds"])
        assert r["throughput"] < 1 / r["p50"] * data["concurrency"] * 2
    assert "cache GET" in result.stdout and "x" in result.stdout.splitlines()[-1]


def test_python_dash_m_and_version():
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("yokedcache ")


def test_demo_paces_cache_operations_not_requests():
    """A read-through miss is two cache operations (get, set): the target counts both."""
    import asyncio

    from yokedcache import YokedCache
    from yokedcache.demo import Workload

    async def main() -> tuple[int, int]:
        async with YokedCache() as cache:
            workload = Workload(cache, rate=0)
            reported = sum([await workload.step() for _ in range(300)])
            return reported, cache.telemetry.counters.total_calls

    reported, made = asyncio.run(main())
    assert reported == made > 300


def test_demo_live_view_before_any_read_shows_no_hit_rate():
    import asyncio

    from yokedcache import YokedCache
    from yokedcache.demo import LiveView, Workload

    async def main() -> str:
        async with YokedCache() as cache:
            return LiveView(cache, Workload(cache, rate=50), "header").render()

    screen = asyncio.run(main())
    assert "hit rate      -" in screen and "target 50" in screen


def test_health_and_stats_name_the_cache(redis_url):
    health = cli("health", "--redis-url", redis_url, "--name", "sessions")
    assert health.returncode == 0 and "cache sessions)" in health.stdout.splitlines()[0], health.stdout
    stats = cli("stats", "--redis-url", redis_url, "--name", "sessions")
    assert stats.returncode == 0 and stats.stdout.startswith("sessions: redis "), stats.stdout
    default = cli("stats", YOKEDCACHE_REDIS_URL=redis_url)  # the probe's default: the library's Redis URL
    assert default.stdout.startswith("redis: redis at redis://127.0.0.1:"), default.stdout
    assert "(counted)" in default.stdout  # exact or estimated, the probe says which
    assert "url from: $YOKEDCACHE_REDIS_URL" in default.stdout
    bad = cli("health", "--name", "no spaces please")
    assert bad.returncode == 2 and "name:" in bad.stderr


def test_the_probes_default_to_the_librarys_redis_url_and_say_which_they_checked(redis_url, monkeypatch):
    """A probe without --redis-url checks the Redis that ``backend="redis"`` would use, never a fresh
    in-memory cache (which is always healthy, so such a probe could never fail)."""
    from yokedcache import CacheConfig
    from yokedcache._cli_common import probe_url
    from yokedcache.cli import build_parser

    monkeypatch.delenv("YOKEDCACHE_REDIS_URL", raising=False)
    for command in ("health", "stats"):
        args = build_parser().parse_args([command])
        assert probe_url(args) == CacheConfig(backend="redis").resolved_redis_url() == "redis://localhost:6379/0"
    dead = f"redis://127.0.0.1:{free_port()}/0"
    down = cli("health", "--timeout", "0.5", YOKEDCACHE_REDIS_URL=dead)  # no flag: the environment's URL
    assert down.returncode == 2 and down.stdout.startswith(f"unhealthy: {dead} "), down.stdout
    assert "url from: $YOKEDCACHE_REDIS_URL" in down.stdout
    up = cli("health", YOKEDCACHE_REDIS_URL=redis_url)
    assert up.returncode == 0 and up.stdout.startswith(f"healthy: {redis_url} "), up.stdout
    flagged = cli("stats", "--redis-url", dead, YOKEDCACHE_REDIS_URL=redis_url)  # the flag wins
    assert flagged.returncode == 2 and dead in flagged.stderr
    helped = cli("health", "--help")
    assert "else redis://localhost:6379/0" in " ".join(helped.stdout.split())


def test_bench_duration_help_says_it_is_the_total():
    """``--duration`` is shared by the four kinds (bench.py divides it by them), and the help says so."""
    text = " ".join(cli("bench", "--help").stdout.split())
    assert "about this many seconds in all, shared by the four kinds" in text
    assert "run each kind for" not in text


def test_a_closed_pipe_ends_the_demo_quietly():
    """``yokedcache demo | head -5``: exit 0, no BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "yokedcache", "demo", "--port", str(free_port())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        lines = [proc.stdout.readline() for _ in range(5)]
        assert lines[0].startswith("status page http://127.0.0.1:")
        proc.stdout.close()  # what head does after its fifth line
        err = proc.stderr.read()
        assert proc.wait(timeout=20) == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


async def test_the_demo_workload_keeps_the_shipped_hit_rate_alert_quiet():
    """The demo's own next step is Prometheus with collector-config/: its YokedCacheHitRateLow rule
    (hits / gets over 10 minutes) must not fire on the demo's workload. Run the demo's mix and seed
    step by step (a miss is a get and a set, as in the demo; its 30-300 s TTLs do not expire in
    these steps): from the first scrape on (15 s, about 15,000 steps at 1,000 ops/s) the hit rate
    since start, which is what a 10-minute rate sees then, stays over the threshold."""
    import yaml

    from yokedcache import CacheConfig, YokedCache
    from yokedcache.demo import Workload

    alerts = (Path(__file__).resolve().parent.parent / "collector-config/prometheus/alerts.yml").read_text()
    rules = [r for group in yaml.safe_load(alerts)["groups"] for r in group["rules"]]
    (rule,) = [r for r in rules if r.get("alert") == "YokedCacheHitRateLow"]
    threshold = float(re.search(r"<\s*([0-9.]+)\s*$", rule["expr"]).group(1))
    async with YokedCache(CacheConfig(enable_metrics=False)) as cache:
        workload = Workload(cache)
        counters = cache.telemetry.counters
        since_start = []
        for _ in range(8):
            for _ in range(5000):
                await workload.step()
            since_start.append(counters.hits / (counters.hits + counters.misses))
    assert min(since_start[2:]) > threshold, (since_start, threshold)
    assert since_start[-1] > threshold + 0.05, since_start  # warm: a margin, not a coin toss
