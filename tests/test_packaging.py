"""The distribution installs as the README says: build the wheel, install it into a fresh venv
without extras (the core and every CLI command work or name the one extra they need, exit 2),
then with ``[monitoring]`` (SDK, Prometheus, StatsD). Dependencies come from the package index."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

QUICK_START = """
import asyncio
from yokedcache import YokedCache, CacheConfig

async def main():
    async with YokedCache(CacheConfig(default_ttl=60)) as cache:
        await cache.set("user:1", {"name": "Ada"}, tags=["users"])
        assert await cache.get("user:1") == {"name": "Ada"}

asyncio.run(main())
import importlib.metadata as md
print(md.version("yokedcache-otel"), sorted(md.requires("yokedcache-otel") or [])[:1])
"""


def _run(*cmd: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_the_wheel_installs_with_and_without_extras_in_a_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, ROOT)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("yokedcache_otel-*.whl")
    # Files that are not Python ship too: the status page (server/status_page.html), py.typed.
    shipped = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "src" / "yokedcache"
    data = {p.relative_to(package.parent).as_posix() for p in package.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}  # fmt: skip
    assert "yokedcache/server/status_page.html" in data and data <= shipped, data - shipped

    venv.create(tmp_path / "venv", with_pip=True)
    bindir = tmp_path / "venv" / "bin"
    python, pip, cli = bindir / "python", bindir / "pip", bindir / "yokedcache"
    core = _run(pip, "install", "--quiet", "--disable-pip-version-check", wheel)
    assert core.returncode == 0, core.stderr

    # Core only: opentelemetry-api and nothing optional.
    listed = _run(pip, "list", "--format=freeze").stdout.lower()
    assert "opentelemetry-api" in listed and "yokedcache-otel" in listed
    for optional in ("opentelemetry-sdk", "redis==", "statsd", "prometheus"):
        assert optional not in listed, optional
    quick = _run(python, "-c", QUICK_START)
    assert quick.returncode == 0, quick.stderr

    # Every command works or prints one line naming the one extra, exit 2.
    needs = {
        ("demo", "--duration", "1", "--port", "0"): "prometheus",
        ("health", "--redis-url", "redis://127.0.0.1:1/0"): "redis",
        ("stats", "--redis-url", "redis://127.0.0.1:1/0"): "redis",
        # the probes check the library's Redis URL by default, never a fresh in-memory cache
        ("health",): "redis",
        ("stats",): "redis",
        ("bench", "--duration", "1"): "prometheus",
    }
    for args, extra in needs.items():
        result = _run(cli, *args, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert f"pip install 'yokedcache-otel[{extra}]'" in result.stderr, (args, result.stderr)
    for args in (("bench", "--duration", "0.5", "--no-metrics"), ("--version",)):
        result = _run(cli, *args, timeout=60)
        assert result.returncode == 0, (args, result.stderr)
    for name, extra in (("StatsDCollector", "statsd"), ("PrometheusCollector", "prometheus"),
                        ("OTLPCollector", "otlp")):  # fmt: skip
        code = f"from yokedcache.monitoring import CacheMetrics, {name}\nCacheMetrics([{name}()])"
        result = _run(python, "-c", code)
        assert result.returncode == 1
        message = result.stderr.strip().splitlines()[-1]
        assert f"yokedcache-otel[{extra}]" in message and message.count("yokedcache-otel[") == 1, message

    # The monitoring extra: SDK, Prometheus and StatsD, and the demo runs.
    more = _run(pip, "install", "--quiet", "--disable-pip-version-check", f"{wheel}[monitoring]")
    assert more.returncode == 0, more.stderr
    listed = _run(pip, "list", "--format=freeze").stdout.lower()
    for wanted in ("opentelemetry-sdk", "opentelemetry-exporter-prometheus", "prometheus_client", "statsd"):
        assert wanted in listed, wanted
    result = _run(python, "-c", "from yokedcache.monitoring import CacheMetrics, PrometheusCollector, StatsDCollector")
    assert result.returncode == 0, result.stderr
    demo = _run(cli, "demo", "--duration", "1", "--port", "0", "--quiet", timeout=60)
    assert demo.returncode == 0, demo.stderr
    assert "ran " in demo.stdout and "next steps:" in demo.stdout
