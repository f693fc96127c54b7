"""The status page in a real browser: ``yokedcache demo`` on a private ``redis-server``, loaded
in headless Debian Chromium driven through the DevTools protocol (``tests/chromium.py``).

Checked, as issue 18 lists: the page's numbers agree with ``/status.json`` and with a Prometheus
scrape taken at the same moment; the charts gain points; killing ``redis-server`` turns the
health panel red with the reason within 2 s, and recovery turns it back; the page requests
nothing from another origin (and its policy would block it if it tried); a screenshot that is
not blank.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest
from prometheus_client.parser import text_string_to_metric_families

from yokedcache.telemetry.semconv import DURATION_BUCKETS

from .chromium import INSTALL_HINT, Chromium, colour_census, find_chromium
from .redis_server import RedisServer, free_port, missing

pytestmark = pytest.mark.slow

#: Everything the test reads from the page: each figure's text (for people) and raw value
#: (data-v, what the text was formatted from), the latency rows, the charts' point counts, the
#: health panel's reasons and colour, the alerts listed; the card's title, each chart's y-axis
#: labels and x-axis span (and where its line starts, 0-1 across), the alert rules and their state.
READ_PAGE = """(() => {
  const card = document.querySelector("[data-cache]");
  if (!card) { return null; }
  const out = {name: card.dataset.cache, figures: {}, latency: {}, charts: {},
               generated_at: Number(document.getElementById("updated").dataset.v)};
  card.querySelectorAll("[data-k]").forEach(e => {
    if (!e.closest("tr")) { out.figures[e.dataset.k] = {v: e.dataset.v, text: e.textContent}; }
  });
  card.querySelectorAll("tr[data-op]").forEach(tr => {
    const row = {};
    tr.querySelectorAll("[data-k]").forEach(e => { row[e.dataset.k] = {v: e.dataset.v, text: e.textContent}; });
    out.latency[tr.dataset.op] = row;
  });
  card.querySelectorAll("svg[data-chart]").forEach(s => { out.charts[s.dataset.chart] = Number(s.dataset.points); });
  out.title = card.querySelector("h2").textContent;
  out.axes = {};
  card.querySelectorAll(".yaxis[data-axis]").forEach(a => {
    const svg = card.querySelector(`svg[data-chart="${a.dataset.axis}"]`);
    out.axes[a.dataset.axis] = {labels: [...a.children].map(e => e.textContent), span: Number(svg.dataset.span),
                                xmin: svg.dataset.xmin === "" ? null : Number(svg.dataset.xmin)};
  });
  out.rules = [...card.querySelectorAll("tr[data-rule]")].map(tr => [tr.dataset.rule, tr.lastChild.textContent]);
  const health = card.querySelector(".health");
  out.health = health.dataset.v;
  out.health_colour = getComputedStyle(health).backgroundColor;
  out.reasons = [...card.querySelectorAll(".reason")].map(e => e.textContent);
  out.alerts = [...card.querySelectorAll("li.alert")].map(e => e.dataset.alert);
  return out;
})()"""

RED, GREEN = "rgb(207, 34, 46)", "rgb(26, 127, 55)"  # --bad and --ok in status_page.html


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read()


def _scrape(origin: str) -> tuple[float, dict[str, float]]:
    """``(time, {series: value})`` of the demo's /metrics, label sets written as in the text."""
    at = time.monotonic()
    text = _get(origin + "/metrics").decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "cache_name")
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return at, values


def _total(values: dict[str, float], name: str, **labels: str) -> float:
    """Sum of ``name`` over the series whose labels include ``labels``."""
    total = 0.0
    for key, value in values.items():
        series, _, rest = key.partition("{")
        have = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if part)
        if series == name and all(have.get(k) == v for k, v in labels.items()):
            total += value
    return total


def _seconds(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"µs": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def _bucket_bounds(before: dict[str, float], after: dict[str, float], q: float) -> tuple[float, float]:
    """The histogram bucket holding the ``q`` quantile of the get durations between two scrapes."""
    name = "yokedcache_cache_operation_duration_seconds_bucket"
    bounds = [*DURATION_BUCKETS, float("inf")]
    counts = [_total(after, name, operation="get", le=_le(b)) - _total(before, name, operation="get", le=_le(b))
              for b in bounds]  # fmt: skip
    rank = q * counts[-1]
    for i, cumulative in enumerate(counts):
        if cumulative >= rank:
            return (bounds[i - 1] if i else 0.0), bounds[i]
    raise AssertionError("no bucket")


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class _OtherOrigin:
    """A server on another port (another origin): records any request that reaches it."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(self.path)
                self.send_response(200)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chromium_binary() -> str:
    binary = find_chromium()
    if binary is None:
        missing(INSTALL_HINT)
    assert binary is not None
    return binary


def test_the_status_page_in_headless_chromium(chromium_binary, tmp_path):
    redis = RedisServer()
    redis.start()
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    printed = tmp_path / "demo.out"
    demo = subprocess.Popen(
        [sys.executable, "-m", "yokedcache", "demo", "--redis-url", redis.url(), "--port", str(port), "--rate", "500"],
        stdout=printed.open("w"), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    other = _OtherOrigin()
    try:
        deadline = time.monotonic() + 30
        while True:
            assert demo.poll() is None, demo.communicate()
            try:
                if json.loads(_get(origin + "/status.json"))["caches"][0]["totals"]["operations"] > 0:
                    break
            except (OSError, IndexError, KeyError):
                pass
            assert time.monotonic() < deadline, "the demo served no traffic within 30 s"
            time.sleep(0.1)
        assert printed.read_text().splitlines()[0] == f"status page {origin}/"  # the URL first

        with Chromium(chromium_binary) as browser:
            page = browser.open_page()
            page.navigate(origin + "/")
            page.wait_until(f"({READ_PAGE}) !== null", timeout=15)

            # -- 1. the numbers: page, /status.json and a Prometheus scrape at the same moment --
            earlier_at, earlier = _scrape(origin)
            time.sleep(10.5)  # one whole window (10 s) of traffic between the two scrapes
            shown = page.evaluate(READ_PAGE)
            doc = json.loads(_get(origin + "/status.json"))
            later_at, later = _scrape(origin)
            cache = doc["caches"][0]
            figures = shown["figures"]
            assert shown["name"] == cache["name"] == "redis" and shown["health"] == "healthy"
            assert shown["health_colour"] == GREEN and figures["breaker"]["v"] == "closed"
            # the page is at most a poll (1 s) behind the JSON
            assert 0 <= doc["generated_at"] - shown["generated_at"] <= 2.5
            ops = float(figures["operations_per_second"]["v"])
            hit_rate = float(figures["hit_rate"]["v"])
            # a text is its value, formatted
            assert int(figures["operations_per_second"]["text"].replace(",", "")) == round(ops)
            assert float(figures["hit_rate"]["text"].rstrip("%")) == pytest.approx(hit_rate * 100, abs=0.051)
            assert int(figures["operations"]["text"].replace(",", "")) == int(figures["operations"]["v"])
            # page vs /status.json: both 10 s windows, at most 2.5 s apart
            assert ops == pytest.approx(cache["window"]["operations_per_second"], rel=0.2)
            assert hit_rate == pytest.approx(cache["window"]["hit_rate"], abs=0.05)
            # page vs Prometheus: counter differences over the same ~10 s
            elapsed = later_at - earlier_at
            count = "yokedcache_cache_operation_duration_seconds_count"
            prom_ops = (_total(later, count) - _total(earlier, count)) / elapsed
            assert ops == pytest.approx(prom_ops, rel=0.2), (ops, prom_ops)
            hits = _total(later, "yokedcache_cache_hits_total") - _total(earlier, "yokedcache_cache_hits_total")
            misses = _total(later, "yokedcache_cache_misses_total") - _total(earlier, "yokedcache_cache_misses_total")
            assert hit_rate == pytest.approx(hits / (hits + misses), abs=0.05), (hit_rate, hits, misses)
            operations = int(figures["operations"]["v"])
            assert operations == pytest.approx(_total(later, count), abs=3 * 500 * 1.2)  # 2.5 s apart at ~500/s
            assert _total(later, "yokedcache_cache_health") == 1  # as the page says: healthy, breaker closed
            assert _total(later, "yokedcache_cache_circuit_breaker_state") == 0
            keys, size = int(figures["keys"]["v"]), int(figures["bytes"]["v"])
            assert keys == pytest.approx(_total(later, "yokedcache_cache_keys_count"), rel=0.2)
            assert size == pytest.approx(_total(later, "yokedcache_cache_size_bytes"), rel=0.2)
            estimated = cache["usage"]["estimated"]
            assert figures["keys"]["text"].startswith("\u2248 ") == estimated  # an estimate says so
            assert int(figures["pool_in_use"]["v"]) <= cache["pool"]["max"]
            # p99 of get: within a bucket of the histogram's over the same stretch
            p99 = float(shown["latency"]["get"]["p99"]["v"])
            assert _seconds(shown["latency"]["get"]["p99"]["text"]) == pytest.approx(p99, rel=0.01)
            low, high = _bucket_bounds(earlier, later, 0.99)
            below = max([b for b in (0.0, *DURATION_BUCKETS) if b < low], default=0.0)
            above = min([b for b in (*DURATION_BUCKETS, float("inf")) if b > high], default=float("inf"))
            assert below <= p99 <= above, (p99, low, high)

            # -- 1b. what the page must say besides the numbers ------------------------------
            # the header names the cache and its backend without saying "redis redis"
            assert shown["title"].startswith("redis") and "Redis server" in shown["title"], shown["title"]
            assert not re.search(r"\b(\w+) \1\b", shown["title"].lower()), shown["title"]
            # four charts, each with a y-axis scale: top, half, 0
            uptime = float(figures["uptime_seconds"]["v"])
            assert set(shown["axes"]) == {"operations_per_second", "hit_rate", "p99_seconds", "error_ratio"}
            for key, axis in shown["axes"].items():
                top, half, bottom = axis["labels"]
                assert bottom == "0" and top not in ("", "0", "-") and half not in ("", "-"), (key, axis)
                # the x-axis spans the history there is (30 s at least): a young page is not mostly
                # empty, its line starts within a few seconds of the cache's start
                assert axis["span"] <= max(30.0, uptime + 5), (key, axis, uptime)
                if axis["xmin"] is not None:
                    assert (1 - axis["xmin"]) * axis["span"] >= min(uptime, axis["span"]) - 5, (key, axis, uptime)
            assert shown["axes"]["hit_rate"]["labels"][0] == "100%"
            # the rules that exist, not only the ones firing (the demo runs two)
            assert {rule for rule, _ in shown["rules"]} == {"backend_down", "slow_operations"}, shown["rules"]
            assert dict(shown["rules"])["backend_down"] == "ok"
            # per-operation rates that add up to the ops/s figure
            rates = {op: float(row["ops"]["v"]) for op, row in shown["latency"].items()}
            assert rates["get"] > 0 and rates["set"] > 0, rates
            assert sum(rates.values()) == pytest.approx(ops, rel=0.25), (rates, ops)

            # -- 2. the charts gain points --------------------------------------------------
            before = shown["charts"]
            grown = " && ".join(
                f"r.charts.{c} > {before[c]}" for c in ("operations_per_second", "hit_rate", "p99_seconds")
            )
            after = page.wait_until(f"(() => {{ const r = {READ_PAGE.strip()}; return r && {grown} && r; }})()",
                                    timeout=15)["charts"]  # fmt: skip
            for chart in ("operations_per_second", "hit_rate", "p99_seconds", "error_ratio"):
                assert after[chart] > before[chart] >= 5, (chart, before, after)

            # -- 3. nothing from another origin ---------------------------------------------
            requested = [e["request"]["url"] for e in page.events("Network.requestWillBeSent")]
            assert requested and all(u.startswith(origin + "/") or u.startswith("data:") for u in requested), requested
            assert any("/status.json" in u for u in requested)
            assert not page.events("Runtime.exceptionThrown")
            assert not [e for e in page.events("Log.entryAdded") if e["entry"]["level"] == "error"]

            png = page.screenshot()
            shot = tmp_path / "status-page.png"
            shot.write_bytes(png)

            # -- 4. a Redis outage: red with the reason within 2 s -----------------------
            redis.stop()  # SIGKILL
            killed = time.monotonic()
            red = page.wait_until(f"(() => {{ const p = {READ_PAGE}; return p.health === 'unhealthy' && p; }})()",
                                  timeout=2.0)  # fmt: skip
            took = time.monotonic() - killed
            assert red["health_colour"] == RED
            assert red["reasons"] and any("connection" in r for r in red["reasons"]), red["reasons"]
            print(f"health panel red {took:.2f} s after the kill: {red['reasons']}")
            alerting = page.wait_until(f"(() => {{ const p = {READ_PAGE}; return p.alerts.length && p; }})()",
                                       timeout=10)  # fmt: skip
            assert alerting["alerts"] == ["backend_down"]

            # -- 5. recovery turns it back (the breaker retries after its 10 s cool-down) ---
            redis.start()
            recovered = page.wait_until(f"(() => {{ const p = {READ_PAGE}; return p.health === 'healthy' && p; }})()",
                                        timeout=45)  # fmt: skip
            assert recovered["health_colour"] == GREEN and recovered["reasons"] == []

            # -- 3b. and the policy would have stopped a request elsewhere ------------------
            blocked = page.evaluate(
                f"fetch('{other.origin}/x').then(() => 'fetched', e => 'blocked: ' + e.message)"
            )  # fmt: skip
            assert blocked.startswith("blocked"), blocked
            assert other.hits == []
            assert any("Content Security Policy" in e["entry"].get("text", "")
                       for e in page.events("Log.entryAdded")), "no CSP violation reported"  # fmt: skip

        # -- 6. the screenshot is not blank --------------------------------------------------
        colours, drawn = colour_census(shot.read_bytes())
        assert colours >= 20 and drawn >= 0.05, (colours, drawn)
    finally:
        other.close()
        demo.send_signal(signal.SIGINT)
        try:
            _, err = demo.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            demo.kill()
            _, err = demo.communicate()
        redis.close()
    assert demo.returncode == 0, err
    assert "Traceback" not in err


def test_the_page_screenshot_in_the_readme_exists_and_is_a_png():
    shot = Path(__file__).resolve().parent.parent / "docs" / "status-page.png"
    root = Path(__file__).resolve().parent.parent
    assert "](docs/status-page.png)" in (root / "README.md").read_text()
    assert "make screenshot" in (root / "docs" / "operations.md").read_text()
    colours, drawn = colour_census(shot.read_bytes())
    assert colours >= 20 and drawn >= 0.05
    assert re.search(rb"IHDR", shot.read_bytes()[:40])
