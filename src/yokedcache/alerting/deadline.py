"""A total deadline for one outgoing network exchange (resolve, connect, TLS, request, reply).

A socket timeout bounds each read, not the exchange: a peer that sends one byte per second
never trips a 5 s per-read timeout and holds the caller forever. ``TotalDeadline`` bounds the
whole exchange instead. Name resolution runs on a helper thread and is abandoned at the
deadline (``getaddrinfo`` cannot be interrupted); each connect gets at most the time left; and
at the deadline a timer shuts the connection down, which makes the blocked call return at once.
The shutdown goes through a duplicate of the socket's descriptor that we own, so it also
reaches the connection after ``ssl`` has wrapped (and detached) the original socket object,
and can never hit an unrelated descriptor that reused the number.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any

__all__ = ["TotalDeadline", "resolve"]


def resolve(host: str, port: int, limit: float) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` for a stream socket, giving up after ``limit`` seconds.

    An IP literal is resolved inline (no lookup happens). A name is looked up on a daemon
    thread: if the resolver hangs, the caller gets ``TimeoutError`` and the thread ends on the
    resolver's own timeout, never holding the process.
    """
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    else:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    outcome: list[Any] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="yokedcache-resolve", daemon=True).start()
    if not done.wait(max(limit, 0.0)):
        raise TimeoutError(f"resolving {host} took longer than {limit:.3g} s")
    if isinstance(outcome[0], OSError):
        raise outcome[0]
    return list(outcome[0])


class TotalDeadline:
    """``with TotalDeadline(5.0) as d:`` -- every connection made through
    :meth:`create_connection` inside the block is cut off 5 s after the block began.

    :meth:`create_connection` has the signature of :func:`socket.create_connection`, so it can
    stand in for it in ``http.client`` (``HTTPConnection._create_connection``) and ``smtplib``
    (``SMTP._get_socket``).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._handles: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.name = "yokedcache-deadline"

    def __enter__(self) -> TotalDeadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with self._lock:
            handles, self._handles = self._handles, []
        for handle in handles:
            handle.close()

    def used_up(self) -> bool:
        """Whether the time is up (a per-read timeout may have ended the exchange first)."""
        return self.expired or time.monotonic() >= self.expires

    def remaining(self) -> float:
        """Seconds left; ``TimeoutError`` once none are."""
        left = self.expires - time.monotonic()
        if self.expired or left <= 0:
            raise TimeoutError(f"total deadline of {self.seconds:g} s exceeded")
        return left

    def create_connection(
        self, address: tuple[str, int], timeout: Any = None, source_address: Any = None, **_: Any
    ) -> socket.socket:
        host, port = address
        per_step = timeout if isinstance(timeout, (int, float)) and timeout > 0 else self.seconds
        last: OSError | None = None
        for family, kind, proto, _name, sockaddr in resolve(host, port, self.remaining()):
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(min(per_step, self.remaining()))
                if source_address:
                    sock.bind(source_address)
                self._watch(sock)
                sock.connect(sockaddr)
                self.remaining()  # a connect that ended just as the deadline passed still fails
                return sock
            except OSError as exc:
                sock.close()
                last = exc
                if self.expired or time.monotonic() >= self.expires:
                    break
        raise last if last is not None else OSError(f"no address found for {host}")

    def _watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                raise TimeoutError(f"total deadline of {self.seconds:g} s exceeded")
            self._handles.append(sock.dup())

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for handle in self._handles:
                try:
                    handle.shutdown(socket.SHUT_RDWR)
                except OSError:  # not connected (yet), or already closed by the peer
                    pass
