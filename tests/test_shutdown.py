"""Nothing yokedcache starts can keep the process alive: real subprocesses against hostile peers.

Each peer is a real TCP server on loopback: a webhook that reads the request and never answers,
one that answers one byte per second, and an SMTP server that accepts and never speaks.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from yokedcache.alerting.notifiers import EmailNotifier, NotificationError, SMTPSettings, WebhookNotifier


class HostilePeer:
    """Accepts connections; ``mode`` "silent" never writes, "trickle" writes a reply one byte a
    second (an HTTP status line and body; to an SMTP client it is a greeting that never ends)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connected = threading.Event()
        self._closed = threading.Event()
        self._conns: list[socket.socket] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        self.connected.set()
        try:
            if self.mode == "trickle":
                reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000
                for i in range(len(reply)):
                    if self._closed.wait(1.0):
                        return
                    conn.sendall(reply[i : i + 1])
            else:
                while conn.recv(65536):
                    pass
        except OSError:
            pass

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        for conn in self._conns:
            conn.close()


@pytest.fixture
def peer(request: pytest.FixtureRequest) -> Iterator[HostilePeer]:
    p = HostilePeer(request.param)
    yield p
    p.close()


APP = """
import asyncio, logging, sys
from yokedcache import YokedCache
from yokedcache.monitoring import AlertManager, SMTPSettings

logging.basicConfig(level=logging.WARNING)
kind, port = sys.argv[1], int(sys.argv[2])

async def main():
    cache = YokedCache()
    await cache.set("k", 1)
    alerts = AlertManager(cache, interval=0.05, smtp=SMTPSettings("127.0.0.1", port, security="none"))
    if kind == "smtp":
        alerts.add_alert("ops", "total_operations", 1, ">=", email_recipients=["oncall@example.com"])
    else:
        alerts.add_alert("ops", "total_operations", 1, ">=", webhook_url=f"http://127.0.0.1:{port}/hook")
    alerts.start()
    while not alerts.history:
        await asyncio.sleep(0.01)
    print("fired", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # until the peer is engaged
    await cache.close()

asyncio.run(main())
print("main returned", flush=True)
"""


@pytest.mark.parametrize(
    ("kind", "peer"), [("webhook", "silent"), ("webhook", "trickle"), ("smtp", "silent")], indirect=["peer"]
)
def test_a_stuck_notifier_never_keeps_the_process_alive(kind: str, peer: HostilePeer, tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(APP))
    proc = subprocess.Popen(
        [sys.executable, str(script), kind, str(peer.port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "fired\n", proc.stderr.read() if proc.stderr else ""
        assert peer.connected.wait(10), "the notification never reached the peer"
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "main returned\n"
        returned = time.monotonic()
        _, stderr = proc.communicate(timeout=30)
        exited = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    print(f"\n{kind} peer {peer.mode}: exited {exited - returned:.2f} s after main returned")  # docs/operations.md; -s
    assert exited - returned < 2.0, f"exited {exited - returned:.2f} s after main returned"
    assert "Traceback" not in stderr, stderr
    # one line says a notification was abandoned; nothing else was printed
    assert stderr.splitlines() == [
        "WARNING:yokedcache.monitoring.alerts:alert ops firing: total_operations=1 (>= 1)",
        "WARNING:yokedcache.monitoring.alerts:exiting with 1 alert notification(s) undelivered after 1 s",
    ], stderr


@pytest.mark.parametrize("peer", ["silent", "trickle"], indirect=True)
def test_a_webhook_attempt_has_a_total_deadline_not_only_a_per_read_timeout(peer: HostilePeer) -> None:
    # a 2 s per-read timeout never trips on a 1 byte/s reply; the total deadline does
    notifier = WebhookNotifier(f"http://127.0.0.1:{peer.port}/hook", timeout=2.0, retries=0)
    started = time.monotonic()
    with pytest.raises(NotificationError, match="no answer within 2 s after 1 attempt"):
        notifier.send({"alert": "x"})
    assert time.monotonic() - started < 10  # generous: the old code never returned from the trickle


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
@pytest.mark.parametrize("peer", ["silent", "trickle"], indirect=True)
def test_an_smtp_delivery_has_a_total_deadline(peer: HostilePeer, security: str) -> None:
    settings = SMTPSettings("localhost", peer.port, security=security, timeout=1.0)
    payload = {"alert": "a", "state": "firing", "metric": "hit_rate", "value": 0.1, "comparison": "<",
               "threshold": 0.5, "severity": "warning", "timestamp": "now"}  # fmt: skip
    with pytest.raises(NotificationError, match=r"smtp localhost:\d+: no answer within 1 s"):
        EmailNotifier(["oncall@example.com"], settings).send(payload)


@pytest.mark.parametrize("peer", ["trickle"], indirect=True)
def test_a_failed_notification_is_counted_and_logged_once_without_traceback(peer: HostilePeer, caplog) -> None:
    from yokedcache import YokedCache
    from yokedcache.monitoring import AlertManager

    caplog.set_level(logging.DEBUG, "yokedcache.monitoring.alerts")
    alerts = AlertManager(YokedCache(), interval=0.05, webhook_timeout=0.5, webhook_retries=1)
    alerts.add_alert("ops", "total_operations", 0, ">=", webhook_url=f"http://127.0.0.1:{peer.port}/hook/SECRET")
    alerts.evaluate()
    assert alerts.stop(timeout=30) is True
    assert alerts.notification_failures == 1
    failures = [r for r in caplog.records if "notification failed" in r.getMessage()]
    assert [r.getMessage() for r in failures] == [
        f"alert ops: notification failed: webhook http://127.0.0.1:{peer.port}: no answer within 0.5 s "
        "after 2 attempt(s)"
    ]
    assert not any(r.exc_info for r in caplog.records)
