"""Regenerate the screenshot of the status page (README.md, docs/operations.md): ``make screenshot``.

    python -m tests.screenshot [docs/status-page.png] [--seconds 60]

Runs ``yokedcache demo`` against a private ``redis-server`` (the in-memory backend when none is
installed) for ``--seconds`` so the charts have points, opens the page in headless Chromium
(``tests/chromium.py``) and saves what it shows as a PNG.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .chromium import INSTALL_HINT, Chromium, colour_census, find_chromium
from .redis_server import RedisServer, free_port


def _wait_for_traffic(origin: str, demo: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            raise RuntimeError(f"the demo exited with {demo.returncode}")
        try:
            with urllib.request.urlopen(origin + "/status.json", timeout=2) as resp:
                if json.loads(resp.read())["caches"][0]["totals"]["operations"] > 0:
                    return
        except (OSError, IndexError, KeyError):
            pass
        time.sleep(0.2)
    raise TimeoutError("the demo served no traffic")


def capture(out: Path, seconds: float, width: int = 1280, height: int = 840) -> None:
    binary = find_chromium()
    if binary is None:
        raise SystemExit(INSTALL_HINT)
    redis = RedisServer() if shutil.which("redis-server") else None
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "yokedcache", "demo", "--port", str(port), "--rate", "1000", "--quiet"]
    if redis is not None:
        redis.start()
        args += ["--redis-url", redis.url()]
    demo = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        _wait_for_traffic(origin, demo)
        print(f"demo running at {origin}/; letting the charts fill for {seconds:g} s", flush=True)
        time.sleep(seconds)
        with Chromium(binary, width=width, height=height) as browser:
            page = browser.open_page()
            page.navigate(origin + "/")
            page.wait_until("document.querySelector('svg[data-chart]') !== null", timeout=15)
            time.sleep(2.5)  # two more polls: every chart drawn with its newest points
            png = page.screenshot()
        colours, drawn = colour_census(png)
        if colours < 20 or drawn < 0.05:
            raise RuntimeError(f"the screenshot looks blank ({colours} colours, {drawn:.0%} drawn)")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(png)
        print(f"wrote {out} ({len(png) / 1024:.0f} KiB, {width}x{height})")
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=20)
        except subprocess.TimeoutExpired:
            demo.kill()
        if redis is not None:
            redis.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Screenshot of the status page for README.md and docs/operations.md")
    parser.add_argument("out", nargs="?", default="docs/status-page.png", type=Path)
    parser.add_argument("--seconds", type=float, default=60.0, help="let the demo run this long first (default 60)")
    parser.add_argument("--height", type=int, default=840, help="viewport height in pixels (default 840)")
    options = parser.parse_args()
    capture(options.out, options.seconds, height=options.height)
