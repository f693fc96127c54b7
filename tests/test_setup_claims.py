"""What the README promises a fresh machine: a missing redis-server is a skip with the install
hint locally, and a failure in CI -- for every test that starts a server, not just most."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .redis_server import INSTALL_HINT

ROOT = Path(__file__).resolve().parent.parent

# Tests that build their own RedisServer (not through the redis_server fixture).
DIRECT = [
    "tests/test_alerts.py::test_redis_down_and_breaker_alerts_follow_a_real_outage",
    "tests/test_redis_backend.py::test_password_url_authenticates",
    "tests/test_resilience.py",
    "tests/test_redis_cluster.py",
]


def _pytest_without_redis(ci: bool, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(tmp_path)  # an empty directory: no redis-server, no redis-cli
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider", *DIRECT],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip


def test_without_redis_server_tests_skip_with_the_hint_locally(tmp_path):
    result = _pytest_without_redis(False, tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "FileNotFoundError" not in out and " failed" not in out and " error" not in out
    assert "skipped" in out and INSTALL_HINT in out


def test_without_redis_server_ci_fails_with_the_hint(tmp_path):
    result = _pytest_without_redis(True, tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "FileNotFoundError" not in out and "failed" in out and INSTALL_HINT in out
