"""OTLP without a Collector: a process exits within 2 s of its main returning, with one WARNING.

Real subprocesses, real sockets: an absent Collector is a free port nobody listens on (connection
refused); a silent one is a TCP server that accepts and never answers. Both transports (gRPC and
HTTP/protobuf), for a program that never calls ``metrics.shutdown()`` (the exit hook), the
docs/telemetry.md's collectors snippet and ``examples/prefork_workers.py`` (an explicit shutdown per worker).
Before: 7-14 s and a page of retry messages from the OTel exporters.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .receivers import OTLPGrpcReceiver, OTLPHttpReceiver
from .redis_server import free_port
from .test_shutdown import HostilePeer

ROOT = Path(__file__).resolve().parent.parent
WARNING = re.compile(
    r"telemetry not delivered at shutdown \(OTLP (grpc|http/protobuf) to http://127\.0\.0\.1:\d+\): "
    r"(connection refused|no answer within 1 s); gave up after 1 s, .*"
)


class Collector:
    """Where the program's OTLP goes: ``absent`` (refused) or ``silent`` (accepts, never answers)."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.peer = HostilePeer("silent") if state == "silent" else None
        self.port = self.peer.port if self.peer else free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.cause = "no answer within 1 s" if self.peer else "connection refused"

    def close(self) -> None:
        if self.peer:
            assert self.peer.connected.is_set(), "the exporter never reached the silent collector"
            self.peer.close()


@pytest.fixture(params=["absent", "silent"])
def collector(request: pytest.FixtureRequest) -> Iterator[Collector]:
    c = Collector(request.param)
    yield c
    c.close()


def run_until_exit(args: list[str], marker: str, env: dict[str, str] | None = None) -> tuple[float, str, str]:
    """Run a program; return (seconds from the last ``marker`` line on stdout to exit, stdout, stderr)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, **(env or {})})  # fmt: skip
    try:
        assert proc.stdout is not None
        out = []
        marked = None
        for line in proc.stdout:  # read as printed: the time is taken when the marker arrives
            out.append(line)
            if marker in line:
                marked = time.monotonic()
        proc.wait(timeout=60)
        exited = time.monotonic()
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert marked is not None, "".join(out) + stderr
    return exited - marked, "".join(out), stderr


APP = """
import asyncio, logging, sys
from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, OTLPCollector

logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
protocol, endpoint = sys.argv[1], sys.argv[2]

async def main():
    metrics = CacheMetrics([OTLPCollector(endpoint=endpoint, protocol=protocol, insecure=True)])
    async with YokedCache(CacheConfig(metrics=metrics, enable_tracing=True)) as cache:
        for i in range(50):
            await cache.set(f"k{i}", i)
            await cache.get(f"k{i}")
    # no metrics.shutdown(): the exit hook does it

asyncio.run(main())
print("main returned", flush=True)
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_program_that_never_shuts_down_exits_within_2_s_with_one_warning(protocol, collector, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(APP))
    took, _, stderr = run_until_exit([sys.executable, str(script), protocol, collector.endpoint], "main returned")
    print(f"app, {protocol}, collector {collector.state}: exited {took:.2f} s after main returned")
    assert took < 2.0, f"exited {took:.2f} s after main returned\n{stderr}"
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("WARNING yokedcache.monitoring.shutdown: ")
    match = WARNING.search(lines[0])
    assert match and match.group(1) == protocol and match.group(2) == collector.cause, lines[0]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_exit_hook_still_delivers_the_final_export_to_a_live_collector(protocol, tmp_path):
    receiver = OTLPGrpcReceiver() if protocol == "grpc" else OTLPHttpReceiver()
    try:
        script = tmp_path / "app.py"
        script.write_text(textwrap.dedent(APP))
        _, _, stderr = run_until_exit([sys.executable, str(script), protocol, receiver.endpoint], "main returned")
    finally:
        receiver.close()
    assert stderr == ""
    gets = {
        {kv.key: kv.value.string_value for kv in p.attributes}["result"]: p.as_int
        for r in receiver.metrics for rm in r.resource_metrics for sm in rm.scope_metrics
        for m in sm.metrics if m.name == "yokedcache.cache.gets" for p in m.sum.data_points
    }  # fmt: skip
    assert gets == {"hit": 50, "miss": 0}
    assert sum(1 for r in receiver.traces for rs in r.resource_spans for ss in rs.scope_spans for _ in ss.spans) == 100


def readme_collectors_snippet() -> str:
    text = (ROOT / "docs" / "telemetry.md").read_text(encoding="utf-8")
    block = text.split("## Collectors: Prometheus, StatsD, OTLP and your own", 1)[1].split("```python\n", 1)[1]
    return block.split("```", 1)[0]


@pytest.mark.parametrize(("protocol", "state"), [("grpc", "absent"), ("http/protobuf", "silent")])
def test_the_readme_collectors_snippet_exits_within_2_s_with_one_warning(protocol, state, tmp_path):
    collector = Collector(state)
    try:
        code = readme_collectors_snippet()
        replacements = {
            'PrometheusCollector(namespace="myapp", port=8000)': 'PrometheusCollector(namespace="myapp", port=0)',
            "port=8125": f"port={free_port()}",  # StatsD over UDP to a closed port: harmless
            'OTLPCollector(endpoint="http://localhost:4317", protocol="grpc")':
                f'OTLPCollector(endpoint="{collector.endpoint}", protocol="{protocol}")',
        }  # fmt: skip
        for old, new in replacements.items():
            assert old in code, f"the docs/telemetry.md snippet changed: {old!r} not found"
            code = code.replace(old, new)
        code += textwrap.dedent("""
            import asyncio
            async def use():
                await cache.set("k", 1)
                await cache.get("k")
            asyncio.run(use())
            print("main returned", flush=True)
        """)
        script = tmp_path / "snippet.py"
        script.write_text(code)
        took, _, stderr = run_until_exit([sys.executable, str(script)], "main returned")
    finally:
        collector.close()
    print(f"docs/telemetry.md snippet, {protocol}, collector {state}: exited {took:.2f} s after main returned")
    assert took < 2.0, f"exited {took:.2f} s after main returned\n{stderr}"
    lines = stderr.splitlines()
    assert len(lines) == 1 and WARNING.fullmatch(lines[0]), stderr  # no logging configured: the message alone
    assert collector.cause in lines[0]


@pytest.mark.parametrize(("protocol", "state"), [("grpc", "silent"), ("http/protobuf", "absent")])
def test_prefork_workers_exit_within_2_s_of_their_work_with_one_warning_each(protocol, state):
    collector = Collector(state)
    try:
        env = {"OTLP_ENDPOINT": collector.endpoint, "WORKERS": "2", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
        took, out, stderr = run_until_exit([sys.executable, "examples/prefork_workers.py"], "done", env)
    finally:
        collector.close()
    print(f"prefork_workers.py, {protocol}, collector {state}: exited {took:.2f} s after the last worker's work")
    assert out.count("done") == 2
    assert took < 2.0, f"exited {took:.2f} s after the last worker's work\n{stderr}"
    lines = stderr.splitlines()
    assert len(lines) == 2 and all(WARNING.fullmatch(line) for line in lines), stderr  # one per worker process
    assert all(f"OTLP {protocol} " in line and collector.cause in line for line in lines)


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                         ("1", TypeError), (True, TypeError)],
)  # fmt: skip
def test_shutdown_timeout_must_be_a_positive_number_of_seconds(value, error):
    from yokedcache.monitoring import CacheMetrics

    with pytest.raises(error, match="shutdown_timeout"):
        CacheMetrics(shutdown_timeout=value)
    with pytest.raises(error, match="timeout"):
        CacheMetrics().shutdown(timeout=value)
