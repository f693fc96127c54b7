"""Closing redis-py connections whose event loop is gone, where nothing can be awaited.

Used by ``RedisBackend.abandon_connections`` (pooled connections) and the auto-pipeliner's
(its own batch connections), when a cache moved to another event loop or is closed from one.
Shutting the socket down is not enough: the server sees the hang-up, but the file descriptor
stays open until the garbage collector finds the transport, which then prints
``ResourceWarning: unclosed transport`` (and redis-py ``unclosed Connection``), failing
``-W error::ResourceWarning`` runs. So each socket is closed here, now.

The only way to close an asyncio transport without its loop is what the loop itself would run
after ``transport.close()``: unregister the descriptor, mark the transport closing, and
``_call_connection_lost``, which closes the socket and detaches the protocol. Those are private
members of the selector transports of CPython's asyncio (3.10-3.13 alike); a transport without
them (uvloop's) is only shut down, as before.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable
from typing import Any

__all__ = ["hang_up"]


def hang_up(connections: Iterable[Any]) -> None:
    """Shut down and close each connection's socket, if it has one (a failed connect leaves none)."""
    for connection in connections:
        writer = getattr(connection, "_writer", None)
        if writer is None:
            continue
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if _close_transport(writer.transport):
            # redis-py's Connection warns "unclosed Connection" while it holds a writer
            connection._writer = connection._reader = None


def _close_transport(transport: Any) -> bool:
    """Close ``transport``'s socket without its event loop; False when it is not ours to close."""
    ssl = getattr(transport, "_ssl_protocol", None)
    if ssl is not None:  # TLS: the app-facing transport over a selector transport
        transport._closed = True  # what its close() sets first; its __del__ warns without it
        return _close_transport(getattr(ssl, "_transport", None))
    raw = getattr(transport, "_sock", None)
    loop = getattr(transport, "_loop", None)
    lost = getattr(transport, "_call_connection_lost", None)
    if raw is None or loop is None or lost is None:
        return transport is not None and raw is None and hasattr(transport, "_call_connection_lost")
    transport._closing = True  # no more reads or writes; StreamWriter.__del__ reads it
    if not loop.is_closed():  # an idle loop that may run again: leave its selector consistent
        for remove in (loop._remove_reader, loop._remove_writer):
            with contextlib.suppress(Exception):
                remove(raw.fileno())
    # Closes the socket in its ``finally``; the protocol's part may fail on a closed loop
    # (scheduling a callback there raises), which changes nothing for the socket.
    with contextlib.suppress(Exception):
        lost(None)
    return True
