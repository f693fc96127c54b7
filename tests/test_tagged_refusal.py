"""Tagged sets never half-succeed silently (real Redis, pipelining on and off).

MULTI/EXEC has no rollback: with a tag whose key holds a string, SADD fails with WRONGTYPE while
the SET beside it succeeds. The backend then removes what the write set, so the result (False,
or the raised error with ``fail_open=False``) and the data agree: nothing of the write is left.
"""

from __future__ import annotations

import pytest
import redis

from yokedcache import CacheConfig, YokedCache
from yokedcache.errors import CacheBackendError


def _tag_key(client: redis.Redis, tag: str) -> bytes:
    """The Redis key of ``tag``'s set, found by looking (the naming is the cache's business)."""
    found = [k for k in client.scan_iter() if k.endswith(tag.encode()) and client.type(k) == b"set"]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipelined", "direct"])
async def test_a_refused_tag_set_leaves_nothing_written(redis_url, pipeline):
    client = redis.Redis.from_url(redis_url)
    async with YokedCache(CacheConfig(redis_url=redis_url, auto_pipeline=pipeline, name="tagged")) as cache:
        assert await cache.set("probe", 1, tags=["good"]) is True
        good = _tag_key(client, "good")
        bad = good[: -len(b"good")] + b"bad"
        client.set(bad, b"not a set")  # another client wrote a string where the tag set goes

        assert await cache.set("k", "v", tags=["good", "bad"]) is False  # fail_open: refused ...
        assert await cache.get("k") is None  # ... and nothing of it is left to read
        assert await cache.set_many({"m1": 1, "m2": 2}, tags=["bad"]) is False
        assert await cache.get("m1") is None and await cache.get("m2") is None
        assert client.get(bad) == b"not a set"  # the foreign key is untouched
        assert await cache.set("k", "v2", tags=["good"]) is True  # the key itself is fine
        assert await cache.get("k") == "v2"

    async with YokedCache(CacheConfig(redis_url=redis_url, auto_pipeline=pipeline, fail_open=False)) as strict:
        with pytest.raises(CacheBackendError, match=r"WRONGTYPE|wrong type"):
            await strict.set("s", "v", tags=["bad"])
        assert await strict.get("s") is None
    client.close()


async def test_when_the_undo_is_refused_too_the_error_says_what_may_remain(redis_url, caplog):
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser("no-unlink", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-unlink"])
    try:
        url = redis_url.replace("redis://", "redis://no-unlink:pw@", 1)
        async with YokedCache(CacheConfig(redis_url=url, auto_pipeline=False, fail_open=False)) as cache:
            await cache.set("probe", 1, tags=["good"])
            bad = _tag_key(admin, "good")[: -len(b"good")] + b"bad"
            admin.set(bad, b"not a set")
            with pytest.raises(CacheBackendError) as info:
                await cache.set("k", "v", tags=["bad"])
            cause = info.value.__cause__
            notes = " ".join([*getattr(info.value, "__notes__", []), *getattr(cause, "__notes__", [])])
            assert "could not be removed" in notes and "NoPermissionError" in notes
            assert (
                "could not be undone (NoPermissionError): 1 key(s) may remain" in caplog.text
            )  # fail_open sees it too
            assert await cache.get("k") == "v"  # what the note warned of: written, untagged
    finally:
        admin.acl_deluser("no-unlink")
        admin.close()
