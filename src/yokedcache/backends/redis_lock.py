"""The Redis lock behind cache-aside's ``lock=True``: one computation per key across processes.

Acquire is ``SET name token NX PX ttl``: atomic, and the key expires by itself if its holder
dies (a SIGKILLed worker never deadlocks the others). The token is random per acquisition, so
release is a compare-and-delete script: a holder whose lock already expired and was taken by
another process cannot delete that other process's lock. One key per command, so each goes to
that key's slot on a Cluster and to the master on Sentinel, like any other command.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RELEASE_LUA", "acquire", "held", "release"]

#: Delete the lock only while it still holds our token (the holder may have outlived its TTL).
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


async def acquire(client: Any, name: str, token: str, ttl: float) -> bool:
    """True if this caller now holds ``name`` for at most ``ttl`` seconds."""
    return bool(await client.set(name, token, nx=True, px=max(1, int(ttl * 1000))))


async def release(client: Any, name: str, token: str) -> bool:
    """Release ``name`` if ``token`` still holds it; False when it expired (or was taken) first."""
    return bool(await client.eval(RELEASE_LUA, 1, name, token))


async def held(client: Any, name: str) -> bool:
    """True while anyone holds ``name``."""
    return bool(await client.exists(name))
