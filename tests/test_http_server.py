"""The metrics/health HTTP server against abusive clients: real sockets, a real subprocess."""

from __future__ import annotations

import selectors
import socket
import struct
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from yokedcache.monitoring import PrometheusCollector
from yokedcache.server.http import LISTEN_BACKLOG, MetricsServer, _Handler, _Server


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_a_client_trickling_one_byte_every_2_s_is_cut_off_at_10_s():
    # The case on the default server: the old per-read timeout (10 s) never tripped.
    collector = PrometheusCollector(port=0)
    assert collector.server is not None
    try:
        sock = socket.create_connection(("127.0.0.1", collector.server.port))
        sock.settimeout(2.0)
        started = time.monotonic()
        trickle = iter(b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 1000)
        closed = False
        while not closed and time.monotonic() - started < 20:  # generous; the deadline is 10 s
            try:
                sock.sendall(bytes([next(trickle)]))
            except OSError:
                closed = True
                break
            closed = _closed_by_server(sock)  # waits up to 2 s: one byte every 2 s
        assert closed, "the server still held the trickling client after 20 s"
        # while it waited, others were served
        with urllib.request.urlopen(collector.url + "/healthz", timeout=5) as resp:
            assert resp.read() == b"ok\n"
        sock.close()
    finally:
        collector.close()


def test_a_client_that_never_reads_the_answer_is_cut_off_too(caplog):
    # the deadline covers the answer: a 32 MB body to a client that reads nothing
    caplog.set_level("DEBUG", "yokedcache.monitoring.http")
    server = MetricsServer(port=0, request_timeout=1.0)
    server.route("/big", lambda headers: (200, "text/plain", b"x" * (32 << 20)))
    try:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 20  # generous; the request's deadline is 1 s
        while not any("timed out" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the server was still sending after 20 s"
            time.sleep(0.05)
        sock.close()
    finally:
        server.close()


HANG_UPS = """
import logging, sys
from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, PrometheusCollector

logging.basicConfig(level=logging.INFO)  # what an application typically runs with
collector = PrometheusCollector(port=0)
cache = YokedCache(CacheConfig(metrics=CacheMetrics([collector])))
print(collector.server.port, flush=True)
sys.stdin.readline()
print("served", flush=True)
sys.stdin.readline()
"""


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_client_hang_ups_print_nothing_on_the_applications_stderr(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(HANG_UPS))
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdin is not None
        port = int(proc.stdout.readline())
        for i in range(30):
            sock = socket.create_connection(("127.0.0.1", port))
            if i % 3 == 0:  # asks, then resets before the answer is written
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            elif i % 3 == 1:  # resets in the middle of its request
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHo")
            _reset(sock)  # (else: resets before sending anything)
        # the server still answers, and has dealt with every hang-up by now
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    assert b"yokedcache_cache_gets_total" in resp.read()
                break
            except OSError:
                assert time.monotonic() < deadline
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "served\n"
        proc.stdin.write("\n")
        proc.stdin.flush()
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert stderr == "", stderr[:2000]


def test_client_hang_ups_are_at_most_a_debug_line(caplog):
    caplog.set_level("DEBUG")
    server = MetricsServer(port=0)
    try:
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
            _reset(sock)
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
            assert resp.read() == b"ok\n"
    finally:
        server.close()
    ours = [r for r in caplog.records if r.name.startswith("yokedcache")]
    assert ours and all(r.levelname == "DEBUG" and r.exc_info is None for r in ours)


def test_the_listen_backlog_holds_a_burst_of_scrapes_while_the_accept_loop_is_busy():
    # Build the server class but run no accept loop (as when it is busy): the kernel queues
    # up to the backlog; with socketserver's default of 5 the 7th connect would hang in SYN retries.
    server = _Server(("127.0.0.1", 0), _Handler)
    sockets = []
    try:
        selector = selectors.DefaultSelector()
        for _ in range(LISTEN_BACKLOG):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(server.server_address)
            sockets.append(sock)
            selector.register(sock, selectors.EVENT_WRITE)
        connected = 0
        deadline = time.monotonic() + 5
        while connected < LISTEN_BACKLOG and time.monotonic() < deadline:
            for key, _ in selector.select(0.1):
                selector.unregister(key.fileobj)
                connected += key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        assert connected == LISTEN_BACKLOG >= 128
    finally:
        for sock in sockets:
            sock.close()
        server.server_close()


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "10", True])
def test_request_timeout_must_be_a_positive_number(value):
    with pytest.raises(ValueError, match="request_timeout"):
        MetricsServer(port=0, request_timeout=value)
