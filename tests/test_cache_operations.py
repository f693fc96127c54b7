"""Every cache operation, on both backends."""

from __future__ import annotations

import asyncio
import time

import pytest

from yokedcache import SerializationError


async def wait_until(predicate, timeout: float = 5.0) -> None:
    """Poll an async predicate until true or fail at the deadline (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


async def test_set_then_get_round_trips_json_values(cache):
    value = {"name": "ada", "langs": ["py", "c"], "n": 3, "ok": True, "none": None}
    assert await cache.set("user:1", value)
    assert await cache.get("user:1") == value


async def test_get_returns_default_for_missing_key(cache):
    assert await cache.get("nope") is None
    assert await cache.get("nope", default="d") == "d"


async def test_returned_values_are_copies(cache):
    await cache.set("k", {"a": [1]})
    got = await cache.get("k")
    got["a"].append(2)
    assert await cache.get("k") == {"a": [1]}


async def test_delete_reports_whether_key_existed(cache):
    await cache.set("k", 1)
    assert await cache.delete("k") is True
    assert await cache.delete("k") is False
    assert await cache.get("k") is None


async def test_exists(cache):
    assert await cache.exists("k") is False
    await cache.set("k", 0)
    assert await cache.exists("k") is True


async def test_get_many_and_set_many(cache):
    assert await cache.set_many({"a": 1, "b": [2], "c": "three"})
    assert await cache.get_many(["a", "b", "missing", "c"]) == {"a": 1, "b": [2], "missing": None, "c": "three"}
    assert await cache.get_many([]) == {}


async def test_ttl_expires_keys(cache):
    await cache.set("short", "v", ttl=0.2)
    await cache.set("long", "v", ttl=60)
    assert await cache.get("short") == "v"

    async def gone() -> bool:
        return await cache.get("short") is None

    await wait_until(gone)
    assert await cache.get("long") == "v"


async def test_default_ttl_applies_when_none_given(make_cache):
    cache = make_cache(default_ttl=0.2)
    await cache.set("k", 1)

    async def gone() -> bool:
        return not await cache.exists("k")

    await wait_until(gone)


async def test_invalidate_tags_removes_tagged_keys_only(cache):
    await cache.set("u:1", 1, tags=["users", "team:a"])
    await cache.set("u:2", 2, tags=["users"])
    await cache.set("p:1", 3, tags="posts")
    assert await cache.invalidate_tags(["team:a"]) == 1
    assert await cache.get("u:1") is None
    assert await cache.get("u:2") == 2
    assert await cache.invalidate_tags("users") == 1
    assert await cache.get("p:1") == 3
    assert await cache.invalidate_tags(["unknown"]) == 0


async def test_invalidate_pattern_uses_glob_relative_to_prefix(cache):
    await cache.set_many({"user:1": 1, "user:2": 2, "users": 3, "post:1": 4})
    assert await cache.invalidate_pattern("user:*") == 2
    assert await cache.get_many(["user:1", "users", "post:1"]) == {"user:1": None, "users": 3, "post:1": 4}


async def test_glob_metacharacters_in_prefix_are_literal(make_cache):
    weird = make_cache(key_prefix="app[1]*:")
    other = make_cache(key_prefix="app1x:")
    await weird.set("k", 1)
    await other.set("k", 2)
    assert await weird.invalidate_pattern("*") == 1
    assert await other.get("k") == 2


async def test_clear_only_touches_own_prefix(make_cache):
    a = make_cache(key_prefix="a:")
    b = make_cache(key_prefix="b:")
    await a.set("k", 1, tags=["t"])
    await b.set("k", 2, tags=["t"])
    assert await a.clear() == 1
    assert await a.get("k") is None
    assert await b.get("k") == 2
    assert await b.invalidate_tags("t") == 1


async def test_unserialisable_value_raises_and_leaves_state_unchanged(cache):
    await cache.set("k", "before")
    with pytest.raises(SerializationError, match="set"):
        await cache.set("k", {1, 2})
    with pytest.raises(TypeError):  # SerializationError is a TypeError too
        await cache.set_many({"k": "x", "j": object()})
    assert await cache.get("k") == "before"
    assert await cache.exists("j") is False


async def test_nan_is_rejected_by_json(cache):
    with pytest.raises(SerializationError):
        await cache.set("k", float("nan"))


@pytest.mark.parametrize("key", [1, b"bytes", None, ("t",)])
async def test_non_string_keys_raise_type_error_naming_key(cache, key):
    with pytest.raises(TypeError, match="key"):
        await cache.get(key)
    with pytest.raises(TypeError, match="key"):
        await cache.set(key, 1)


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf")])
async def test_bad_ttl_raises_value_error(cache, ttl):
    with pytest.raises(ValueError, match="ttl"):
        await cache.set("k", 1, ttl=ttl)


@pytest.mark.parametrize("ttl", ["10", True, [1]])
async def test_wrong_type_ttl_raises_type_error(cache, ttl):
    with pytest.raises(TypeError, match="ttl"):
        await cache.set("k", 1, ttl=ttl)


async def test_bad_tags_raise_type_error(cache):
    with pytest.raises(TypeError, match="tags"):
        await cache.set("k", 1, tags=[1])
    with pytest.raises(TypeError, match="tags"):
        await cache.set("k", 1, tags=5)


async def test_pickle_only_when_chosen(make_cache):
    cache = make_cache(serializer="pickle")
    await cache.set("k", {1, 2})
    assert await cache.get("k") == {1, 2}


async def test_async_context_manager_closes(make_cache):
    cache = make_cache()
    async with cache as c:
        await c.set("k", 1)
    assert cache._closed


async def test_get_many_refuses_a_single_string_instead_of_reading_its_letters(cache):
    with pytest.raises(TypeError, match="keys: expected an iterable of str keys"):
        await cache.get_many("abc")


async def test_a_plain_reset_keeps_the_key_in_its_tags_on_both_backends(cache):
    await cache.set("k", 1, tags=["t"])
    await cache.set("k", 2)  # no tags: on Redis the tag set still names the key; memory agrees
    assert await cache.invalidate_tags("t") == 1
    assert await cache.get("k") is None
