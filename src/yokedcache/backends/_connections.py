"""Hanging up redis-py connections whose event loop is gone, where nothing can be awaited.

Used by ``RedisBackend.abandon_connections`` (pooled connections) and the auto-pipeliner's
(its own batch connections): the server sees the hang-up at once, so its connection count does
not wait for the garbage collector to close the file descriptors.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable
from typing import Any

__all__ = ["hang_up"]


def hang_up(connections: Iterable[Any]) -> None:
    """Shut down each connection's socket, if it has one (a failed connect leaves none)."""
    for connection in connections:
        writer = getattr(connection, "_writer", None)
        sock = writer.get_extra_info("socket") if writer is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
