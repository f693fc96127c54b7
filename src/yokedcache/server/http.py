"""A small HTTP server for ``/metrics``, ``/healthz``, ``/readyz`` and the status page.

prometheus_client's own server serves only metrics; probes belong on the same port so one
container port and one scrape target cover both. It answers only its routes, only GET and
HEAD, ignores request bodies, and binds loopback unless told otherwise.

Each request has a total deadline (``request_timeout``, 10 s) from the moment the server starts
waiting for it to the last byte of the answer. A socket timeout alone bounds each read, so a
client sending one byte every few seconds would hold a thread forever. A client that hangs up
is its own business: it costs one DEBUG line, never a traceback on the application's stderr.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from .. import validation
from ..health import DEGRADED, HEALTHY, readiness_report, worst_status

if TYPE_CHECKING:
    from ..health import HealthSource
    from ..telemetry.observers import Observed

log = logging.getLogger("yokedcache.monitoring.http")

#: A route gets the request headers (names lower-cased) plus ``":query"``, the raw query string
#: (a pseudo-header, as in HTTP/2: no client can send a field name starting with ``:``), and
#: answers ``(status, content type, body)`` or ``(status, content type, body, extra headers)``.
Route = Callable[[dict[str, str]], tuple[Any, ...]]


def json_response(status: int, payload: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(payload, default=str).encode()


class ReadinessRoute:
    """``/readyz``: the detailed health check of every cache reporting to ``source()``, as JSON.

    200 when every cache is healthy or degraded, 503 otherwise (or when no cache reports).
    One cache answers its own report; several answer ``{"status": worst, "caches": [...]}``.
    Results are reused for ``min_interval`` seconds so a probe storm cannot flood Redis with
    pings, and concurrent probes share one check.
    """

    def __init__(self, source: Callable[[], list[Any]], min_interval: float = 1.0) -> None:
        self._source = source
        self._min_interval = min_interval
        self._lock = threading.Lock()
        self._last: tuple[float, tuple[int, str, bytes]] | None = None

    def __call__(self, headers: dict[str, str]) -> tuple[int, str, bytes]:
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < self._min_interval:
                return self._last[1]
            answer = self._check()
            self._last = (time.monotonic(), answer)
            return answer

    def _check(self) -> tuple[int, str, bytes]:
        caches = [cache for cache in map(_owner, self._source()) if cache is not None]
        if not caches:
            return json_response(503, {"status": "unhealthy", "reasons": ["no cache reports to this server"]})
        # the check gives up after health_check_timeout; the loop gets one more second to run it
        reports = [readiness_report(cache, cache.config.health_check_timeout + 1.0) for cache in caches]
        status = worst_status([r["status"] for r in reports])
        payload = reports[0] if len(reports) == 1 else {"status": status, "caches": reports}
        return json_response(200 if status in (HEALTHY, DEGRADED) else 503, payload)


def _owner(member: Observed) -> HealthSource | None:
    """The cache behind a reporting member (its telemetry holds it weakly), or None once collected."""
    owner = member.owner
    return owner() if owner is not None else None


#: Seconds one request may take in all: waiting for it, reading it, answering it.
REQUEST_TIMEOUT = 10.0

#: Connections the kernel holds while the accept loop is busy. Scrapes arrive in bursts
#: (several Prometheus replicas, kubelet liveness and readiness probes, ad-hoc curls), and the
#: accept loop shares the GIL with the application; with socketserver's default of 5 a burst
#: overflows the queue, the kernel drops the SYNs and each client waits for its 1 s (then 3 s)
#: retransmit: a slow or failed probe. 128 was Linux's SOMAXCONN before 5.4 and is a common
#: server default; the kernel caps it at ``net.core.somaxconn``.
LISTEN_BACKLOG = 128


class _Deadline:
    """When the current request must be done by. Shared by a handler and its two files (which
    hold this, not the handler: no reference cycle, so nothing per request waits for the GC)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = 0.0

    def restart(self) -> None:
        self.at = time.monotonic() + self.seconds

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"request not completed within {self.seconds:g} s")
        return left


class _DeadlineReader(io.RawIOBase):
    """The request socket's read side, each read given only the time left of the request."""

    def __init__(self, connection: Any, deadline: _Deadline) -> None:
        self._connection = connection
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._connection.settimeout(self._deadline.left())
        return int(self._connection.recv_into(buffer))


class _DeadlineWriter(io.BufferedIOBase):
    """The write side: ``sendall`` with the time left (its timeout covers the whole send)."""

    def __init__(self, connection: Any, deadline: _Deadline) -> None:
        self._connection = connection
        self._deadline = deadline

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._connection.settimeout(self._deadline.left())
        self._connection.sendall(data)
        return len(data)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:  # StreamRequestHandler.setup with deadline-aware files instead of makefile()
        self.connection = self.request
        # Headers and body are two writes. With Nagle's algorithm on, a client that keeps the
        # connection alive (Prometheus, the status page's poll) got the body only after its
        # delayed ACK of the headers: 40 ms per answer instead of 0.2 ms.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._deadline = _Deadline(self.server.request_timeout)
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self._deadline))
        self.wfile = _DeadlineWriter(self.connection, self._deadline)

    def handle_one_request(self) -> None:
        self._deadline.restart()
        super().handle_one_request()  # a TimeoutError ends the connection (logged at DEBUG)

    def _answer(self, with_body: bool) -> None:
        path, _, query = self.path.partition("?")
        route = self.server.routes.get(path)
        extra: dict[str, str] = {}
        if route is None:
            status, ctype, body = 404, "text/plain; charset=utf-8", b"not found\n"
        else:
            try:
                request = {k.lower(): v for k, v in self.headers.items()}
                request[":query"] = query
                status, ctype, body, *more = route(request)
                if more:
                    extra = more[0]
            except Exception as exc:  # a failing route must not kill the server thread
                log.warning("route %s failed: %s", path, type(exc).__name__)
                status, ctype, body = 500, "text/plain; charset=utf-8", b"internal error\n"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def _not_allowed(self) -> None:
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def log_message(self, format: str, *args: Any) -> None:  # quiet: access logs are the app's business
        log.debug("%s - %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG
    routes: dict[str, Route]
    request_timeout: float = REQUEST_TIMEOUT
    ticks: list[Callable[[], None]]

    def service_actions(self) -> None:
        """Between requests, at least every poll interval (0.5 s): the routes' periodic work
        (the status page's chart readings), on this thread: no thread of its own to stop."""
        for tick in self.ticks:
            try:
                tick()
            except Exception as exc:  # never end serving over a reading
                log.warning("periodic task %s failed: %s", getattr(tick, "__qualname__", tick), type(exc).__name__)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """socketserver prints a traceback to stderr here; a client that hung up, reset or ran
        out of time is routine (and any client could flood the logs with it): one DEBUG line."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            log.debug("client %s: %s", client_address[0], type(exc).__name__)
        else:  # a bug of ours: worth a line, still not a traceback per request
            log.warning("request from %s failed: %s", client_address[0], type(exc).__name__)


class _SharedPortServer(_Server):
    """Binds with ``SO_REUSEPORT``: the workers of one service (same user) all listen on the
    port and the kernel spreads connections over them. Used only in multiprocess mode, where
    any worker answers for the whole service."""

    allow_reuse_port = True


class MetricsServer:
    """Serves routes on ``addr:port`` from a daemon thread (``port=0`` picks a free port).

    ``request_timeout``: seconds a request may take in all, from waiting for it to answering.
    ``reuse_port``: share the port with the other processes of this service (``SO_REUSEPORT``).
    """

    def __init__(self, addr: str = "127.0.0.1", port: int = 9464, *, request_timeout: float = REQUEST_TIMEOUT,
                 reuse_port: bool = False) -> None:  # fmt: skip
        validation.port("port", port, allow_zero=True)
        validation.number("request_timeout", request_timeout, rule="expected a positive number of seconds",
                          minimum=0, allow_zero=False, finite=True)  # fmt: skip
        validation.boolean("reuse_port", reuse_port)
        try:
            self._httpd = (_SharedPortServer if reuse_port else _Server)((addr, port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(exc.errno, f"port {port} on {addr} is already in use") from None
            raise OSError(exc.errno, f"cannot listen on {addr}:{port}: {exc.strerror}") from None
        self._httpd.request_timeout = float(request_timeout)
        self._httpd.ticks = []
        self._httpd.routes = {"/healthz": lambda headers: (200, "text/plain; charset=utf-8", b"ok\n")}
        self.addr = addr
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"yokedcache-http-{self.port}",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}"

    def route(self, path: str, handler: Route) -> None:
        self._httpd.routes[path] = handler

    def every_poll(self, task: Callable[[], None]) -> None:
        """Run ``task`` on the server's thread between requests, at least every 0.5 s."""
        self._httpd.ticks.append(task)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
