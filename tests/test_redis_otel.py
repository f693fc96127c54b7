"""redis-py's own OpenTelemetry (``redis[otel]``, every metric group on) beside ours.

Each case runs ``tests/redis_otel_probe.py`` in a fresh interpreter (redis-py records into the
global MeterProvider, which a process sets once), with the installed redis-py and with older
ones from ``tests/.redis-py/<version>`` (``make test`` installs them there; git-ignored):

- 7.3.0, the first redis-py whose asyncio client has OpenTelemetry of its own;
- 5.0.1, the lowest redis-py the cache runs on (none of its own: ours records everything).

What must hold (docs/semconv.md): no Redis operation counted twice under
``db.client.operation.duration``; ``db.client.connection.count`` from one source only; with
auto-pipelining, a start-up log line says ours times what redis-py cannot see; one CLIENT span
per operation, all ours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
#: Versions beside the installed one (the Makefile's REDIS_PY_VERSIONS).
OLDER = ("7.3.0", "5.0.1")
#: What the probe does per cache, and two caches: GET x4 (3 hits, 1 miss), SET x1.
GETS, SETS = 8, 2


def probe(redis_url: str, mode: str, version: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if version is not None:
        target = HERE / ".redis-py" / version
        if not (target / "redis" / "__init__.py").exists():
            if os.environ.get("CI"):
                raise AssertionError(f"redis-py {version} missing in {target}: `make test` installs it")
            pytest.skip(f"redis-py {version} not installed: pip install --no-deps --target {target} redis=={version}")
        env["PYTHONPATH"] = str(target)
    done = subprocess.run([sys.executable, str(HERE / "redis_otel_probe.py"), redis_url, mode], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if version is not None:
        assert found["redis"] == version
    return found


VERSIONS = [None, *OLDER]


@pytest.mark.parametrize("version", VERSIONS, ids=["installed", *OLDER])
@pytest.mark.parametrize("mode", ["pipelined", "direct"])
def test_no_operation_is_counted_twice_and_spans_stay_ours(redis_url, mode, version):
    found = probe(redis_url, mode, version)
    recorded, log = found["recorded"], found["log"]
    ours_get, ours_set = recorded.get("yokedcache GET", 0), recorded.get("yokedcache SET", 0)
    theirs_get, theirs_set = recorded.get("redis-py GET", 0), recorded.get("redis-py SET", 0)
    assert (ours_get + theirs_get, ours_set + theirs_set) == (GETS, SETS)  # every one, once
    assert found["client_spans"] == found["operations"] and found["span_scopes"] == ["yokedcache"]
    if not found["native"]:  # no OpenTelemetry in redis-py: ours times everything, nothing to say
        assert (ours_get, recorded.get("yokedcache SCAN")) == (GETS, 2) and not log
        return
    # redis-py times what passes its command path (and names the system db.system, the old name)
    assert recorded.get("redis-py SCAN", 0) >= 2 and recorded.get("yokedcache SCAN", 0) == 0
    assert recorded["redis-py db.system"] > 0
    # its db.client.connection.count is the only one: ours leaves the name to it
    assert found["connections"].get("yokedcache", 0) == 0 and found["connections"].get("redis-py", 0) > 0
    assert sum("db.client.connection.count" in line for line in log) == 1  # once for two caches
    # redis-py never sees what the pipeliner, or with auto_pipeline=False the direct path, writes
    # below its command layer: ours times those, and says so once
    assert (ours_get, theirs_get) == (GETS, 0)
    assert sum("auto-pipeliner" in line for line in log) == 1


def test_ci_runs_a_redis_py_with_opentelemetry_of_its_own():
    """The installed redis-py is the one the native-telemetry cases above exercise."""
    import redis

    major, minor = (int(part) for part in redis.__version__.split(".")[:2])
    assert (major, minor) >= (7, 3), f"redis-py {redis.__version__}: the suite needs >= 7.3 ('redis[otel]')"
    from redis.observability.providers import get_observability_instance

    assert callable(get_observability_instance)  # the native telemetry the cases above turn on
