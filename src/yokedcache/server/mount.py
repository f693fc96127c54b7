"""The server's routes as an ASGI or WSGI application, to mount in the application itself.

``MetricsServer`` serves routes on a port of its own. Behind a platform that exposes one port per
service, or to keep telemetry on the application's own server, the same routes are mounted
instead (``app.mount("/observability", make_asgi_app())``). Paths are relative to the mount
point: ASGI's ``root_path`` and WSGI's ``SCRIPT_NAME`` are the prefix, ``path`` / ``PATH_INFO``
the route. Only GET and HEAD are answered, like the server.

Routes are synchronous and may wait (``/readyz`` runs a health check on the cache's own event
loop), so the ASGI app runs them in a worker thread, never on the event loop it serves from.
The periodic work the server does between requests (the status page's chart readings) runs
here before a request, at most every ``TICK_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from .http import Route

__all__ = ["AsgiApp", "RouteTable", "WsgiApp"]

log = logging.getLogger("yokedcache.monitoring.http")

TICK_SECONDS = 0.5
_NOT_FOUND = (404, "text/plain; charset=utf-8", b"not found\n", {})
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error",
            503: "Service Unavailable"}  # fmt: skip


class RouteTable:
    """Routes and periodic tasks with no server of their own (the ``MetricsServer`` shape)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {"/healthz": lambda headers: (200, "text/plain; charset=utf-8", b"ok\n")}
        self._ticks: list[Callable[[], None]] = []
        self._last_tick = 0.0
        self._lock = threading.Lock()

    def route(self, path: str, handler: Route) -> None:
        self.routes[path] = handler

    def every_poll(self, task: Callable[[], None]) -> None:
        self._ticks.append(task)

    def answer(
        self, method: str, path: str, query: str, headers: dict[str, str]
    ) -> tuple[int, str, bytes, dict[str, str]]:
        """``(status, content type, body, extra headers)`` for one request."""
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"", {"Allow": "GET, HEAD"}
        self._tick()
        route = self.routes.get(path or "/")
        if route is None:
            return _NOT_FOUND
        try:
            status, ctype, body, *more = route({**headers, ":query": query})
        except Exception as exc:  # a failing route answers 500, it does not fail the application
            log.warning("route %s failed: %s", path, type(exc).__name__)
            return 500, "text/plain; charset=utf-8", b"internal error\n", {}
        return status, ctype, body if method == "GET" else b"", (more[0] if more else {})

    def _tick(self) -> None:
        with self._lock:
            if time.monotonic() - self._last_tick < TICK_SECONDS:
                return
            self._last_tick = time.monotonic()
            for tick in self._ticks:
                try:
                    tick()
                except Exception as exc:  # never fail a request over a reading
                    log.warning("periodic task failed: %s", type(exc).__name__)


class AsgiApp:
    """The routes as an ASGI application (Starlette/FastAPI ``mount``, or served alone)."""

    def __init__(self, table: RouteTable) -> None:
        self.table = table

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":  # served alone: accept start-up and shutdown
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = _relative(scope.get("path", "/"), scope.get("root_path", ""))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = scope.get("query_string", b"").decode("latin-1")
        answer = self.table.answer
        status, ctype, body, extra = await asyncio.get_running_loop().run_in_executor(
            None, answer, scope.get("method", "GET"), path, query, headers
        )
        raw = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


def _relative(path: str, root: str) -> str:
    """The route under the mount point. Starlette keeps the full path in ``path`` and the mount
    point in ``root_path``; other servers strip it already."""
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


class WsgiApp:
    """The routes as a WSGI application (Flask via ``DispatcherMiddleware``, Django, gunicorn)."""

    def __init__(self, table: RouteTable) -> None:
        self.table = table

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        status, ctype, body, extra = self.table.answer(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("PATH_INFO", "/"),
            environ.get("QUERY_STRING", ""),
            headers,
        )
        start_response(f"{status} {_REASONS.get(status, 'Unknown')}",
                       [("Content-Type", ctype), ("Content-Length", str(len(body))), *extra.items()])  # fmt: skip
        return [body]
