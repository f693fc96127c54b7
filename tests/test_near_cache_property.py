"""The near cache's coherence promise, checked on real histories: two processes, random reads and
writes, invalidation links killed and Redis restarted underneath them.

The rule (docs/near-cache.md), for a read of key ``k`` that started at ``t``:

- it may not return a value whose write had been *overwritten* by a write whose reply some
  process received before ``t - max_staleness`` (before ``t`` if the reading process made it);
- a Redis restart counts as a write of "absent" to every key, sent when the server was killed
  and replied when it answered again (its data is gone, as with ``FLUSHALL``).

"Overwritten" is real-time order: write A precedes write B when A's reply came before B was
sent. Overlapping writes may land in either order, and a write that failed may or may not have
landed, so neither is held against a read. Values are unique, so a read names its write.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from .redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
STALENESS = 0.05
SECONDS = 5.0


@dataclass(frozen=True)
class Write:
    key: str
    value: object
    sent: float
    replied: float  # math.inf: failed (may or may not have landed)
    pid: int | str


def violations(writes: list[Write], reads: list[tuple[int, str, object, float]], staleness: float) -> list[str]:
    """Every read that broke the rule, explained. ``reads``: (pid, key, value, started)."""
    by_key: dict[str, list[Write]] = {}
    for w in writes:
        by_key.setdefault(w.key, []).append(w)
    found = []
    for pid, key, value, started in reads:
        history = by_key.get(key, [])
        # the newest write that must be visible: completed long enough ago (or by this process)
        due = [w.sent for w in history if w.replied < (started if w.pid == pid else started - staleness)]
        must_follow = max(due, default=-math.inf)
        candidates = [w for w in history if w.value == value] + ([] if value is not None else [INITIAL])
        if not any(w.replied >= must_follow for w in candidates):
            found.append(f"pid {pid} read {key}={value!r} at {started:.4f}, but a write sent at {must_follow:.4f} "
                         f"had long replied (candidates {candidates})")  # fmt: skip
    return found


INITIAL = Write("", None, -math.inf, -math.inf, "initial")


def test_the_checker_catches_a_stale_read():
    writes = [Write("k", "a", 0.0, 1.0, 1), Write("k", "b", 2.0, 3.0, 2)]
    assert violations(writes, [(1, "k", "a", 3.0 + STALENESS / 2)], STALENESS) == []  # within the bound
    assert len(violations(writes, [(1, "k", "a", 3.0 + STALENESS * 2)], STALENESS)) == 1  # stale
    assert len(violations(writes, [(2, "k", "a", 3.01)], STALENESS)) == 1  # its own write: at once
    overlapping = [Write("k", "a", 0.0, 2.5, 1), Write("k", "b", 2.0, 3.0, 2)]
    assert violations(overlapping, [(1, "k", "a", 9.0)], STALENESS) == []  # either order
    restart = Write("k", None, 4.0, 5.0, "restart")
    assert len(violations([*writes, restart], [(1, "k", "b", 5.0 + STALENESS * 2)], STALENESS)) == 1
    assert violations([*writes, restart], [(1, "k", None, 6.0)], STALENESS) == []


def test_two_processes_with_link_kills_and_restarts_stay_coherent(tmp_path):
    from .conftest import _require_redis

    _require_redis()
    server = RedisServer()
    server.start()
    rng = random.Random(2712)
    workers, outs = [], []
    try:
        for i in range(2):
            out = tmp_path / f"worker{i}.json"
            outs.append(out)
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "tests.near_cache_worker", server.url(), str(rng.randrange(10**6)),
                 str(SECONDS), str(STALENESS), str(out)], cwd=ROOT))  # fmt: skip
        restarts: list[Write] = []
        kills = 0
        deadline = time.monotonic() + SECONDS
        time.sleep(0.8)
        while time.monotonic() < deadline - 0.8:
            if rng.random() < 0.25 and len(restarts) < 2:
                down = time.monotonic()
                server.restart()
                restarts.append(Write("*", None, down, time.monotonic(), "restart"))
            else:
                with redis.Redis.from_url(server.url()) as admin:
                    kills += admin.client_kill_filter(_type="pubsub")
            time.sleep(rng.uniform(0.2, 0.5))
        for worker in workers:
            assert worker.wait(timeout=SECONDS + 30) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        server.close()

    histories = [json.loads(out.read_text()) for out in outs]
    writes = [*(Write(key, None, r.sent, r.replied, "restart") for r in restarts for key in _keys(histories))]
    reads = []
    for h in histories:
        for kind, key, value, t0, t1 in h["events"]:
            if kind == "w":
                writes.append(Write(key, value, t0, t1 if t1 is not None else math.inf, h["pid"]))
            else:
                reads.append((h["pid"], key, value, t0))
    assert violations(writes, reads, STALENESS) == []
    # The run exercised what it claims to: local hits, links lost and re-made, restarts.
    assert all(h["counts"]["hits"] > 50 for h in histories), [h["counts"] for h in histories]
    assert kills + len(restarts) >= 3 and sum(h["counts"]["flushes"] for h in histories) >= 4
    assert len(reads) > 1000


def _keys(histories: list[dict]) -> set[str]:
    return {e[1] for h in histories for e in h["events"]}
