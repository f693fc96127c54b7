"""A private ``redis-server`` per test session, on a free loopback port.

Tests own it so they can kill and restart it to inject faults; nothing depends on the
machine's shared server at 6379.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

INSTALL_HINT = "redis-server not found: install it with 'apt-get install -y redis-server' (Debian/Ubuntu)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int, password: str | None = None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            if password:
                pw = password.encode()
                s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(pw), pw))
                s.recv(64)
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
            # a replica with stale reads off answers MASTERDOWN while its primary is away: it is up
            return reply.startswith((b"+PONG", b"-MASTERDOWN"))
    except OSError:
        return False


def missing(hint: str) -> None:
    """A tool a test needs is not installed: skip with ``hint`` locally, fail in CI.

    Outside pytest (the benchmarks) it is a FileNotFoundError carrying the same hint.
    """
    import sys

    if "pytest" not in sys.modules:
        raise FileNotFoundError(hint)
    import pytest

    if in_ci():
        pytest.fail(hint, pytrace=False)
    pytest.skip(hint)


class RedisServer:
    def __init__(self, *extra_args: str, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing(INSTALL_HINT)
        assert binary is not None
        self.binary = binary
        self.password = password
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="yokedcache-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.dir), *self.extra_args]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode} on port {self.port}")
            if _ping(self.port, self.password):
                return
            time.sleep(0.02)
        raise TimeoutError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterServers:
    """Three ``redis-server --cluster-enabled yes`` primaries on loopback, joined by redis-cli."""

    def __init__(self, nodes: int = 3) -> None:
        self.nodes = [RedisServer("--cluster-enabled", "yes", "--cluster-node-timeout", "2000") for _ in range(nodes)]
        for node in self.nodes:
            node.port = free_cluster_port()
            node.extra_args += ["--cluster-config-file", str(node.dir / "nodes.conf")]

    def start(self, timeout: float = 30.0) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            missing("redis-cli not found: install it with 'apt-get install -y redis-tools'")
        assert cli is not None
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run([cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [
                subprocess.run([cli, "-p", str(n.port), "cluster", "info"], capture_output=True, text=True, timeout=10)
                for n in self.nodes
            ]
            if all("cluster_state:ok" in s.stdout for s in states):
                return
            time.sleep(0.1)
        raise TimeoutError("the cluster did not reach cluster_state:ok")

    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def close(self) -> None:
        for node in self.nodes:
            node.close()


class RedisSentinelServer:
    """A ``redis-server --sentinel`` watching ``primary`` as service ``mymaster``."""

    def __init__(
        self, primary: RedisServer, service: str = "mymaster", down_after_ms: int = 2000, password: str | None = None
    ) -> None:
        self.primary = primary
        self.password = password  # the sentinel's own requirepass
        self.service = service
        self.down_after_ms = down_after_ms
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="yokedcache-sentinel-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        conf = self.dir / "sentinel.conf"
        lines = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}",
                 f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 1",
                 f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
                 f"sentinel failover-timeout {self.service} 5000"]  # fmt: skip
        if self.primary.password:
            lines.append(f"sentinel auth-pass {self.service} {self.primary.password}")
        if self.password:
            lines.append(f"requirepass {self.password}")
        conf.write_text("\n".join(lines) + "\n")
        binary = shutil.which("redis-server")
        assert binary is not None, INSTALL_HINT
        self.proc = subprocess.Popen([binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + timeout
        query = b"*3\r\n$8\r\nSENTINEL\r\n$23\r\nGET-MASTER-ADDR-BY-NAME\r\n$%d\r\n%s\r\n" % (
            len(self.service), self.service.encode())  # fmt: skip
        if self.password:
            pw = self.password.encode()
            query = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(pw), pw) + query
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(query)
                    reply, wanted = b"", str(self.primary.port).encode()
                    while wanted not in reply:  # with AUTH first the replies may arrive apart
                        chunk = s.recv(256)
                        if not chunk:
                            break
                        reply += chunk
                    if wanted in reply:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"sentinel on port {self.port} did not report the primary")

    def url(self, db: int = 0) -> str:
        auth = f":{self.primary.password}@" if self.primary.password else ""
        return f"redis+sentinel://{auth}127.0.0.1:{self.port}/{self.service}/{db}"

    def command(self, *args: str) -> object:
        import redis

        with redis.Redis(port=self.port, password=self.password, socket_timeout=2) as client:
            return client.execute_command(*args)

    def primary_port(self) -> int:
        _, port = self.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)  # type: ignore[misc]
        return int(port)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def given_or_private_redis(url: str | None) -> Iterator[str]:
    """``url`` when given, else a private ``redis-server`` for the duration (benchmarks use this)."""
    if url is not None:
        yield url
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url()
    finally:
        server.close()
