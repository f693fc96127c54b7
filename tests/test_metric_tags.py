"""Application metric tags that Prometheus reserves are rejected, checked with the real promtool."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import pytest

from yokedcache.monitoring import CacheMetrics, PrometheusCollector

from .redis_server import in_ci


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        msg = "promtool not found: install it with 'apt-get install -y prometheus' (Debian/Ubuntu)"
        pytest.fail(msg) if in_ci() else pytest.skip(msg)
    return found


@pytest.mark.parametrize("tag", ["le", "quantile", "__name__", "__meta_x", ""])
@pytest.mark.parametrize("kind", ["histogram", "timing", "increment", "gauge"])
async def test_reserved_tag_names_raise_value_error_naming_the_tag(kind, tag):
    metrics = CacheMetrics()  # rejected whatever the collectors: tags mean the same to all of them
    with pytest.raises(ValueError, match="tags: "):
        await getattr(metrics, kind)("payload.size", 3, tags={tag: "5"})


async def test_an_app_histogram_scrape_passes_promtool_and_a_tag_named_le_is_refused():
    collector = PrometheusCollector(port=0)
    metrics = CacheMetrics([collector])
    try:
        with pytest.raises(ValueError, match="'le' is reserved by Prometheus"):
            await metrics.histogram("payload.size", 3, tags={"le": "big"})
        with pytest.raises(ValueError, match="'quantile' is reserved"):
            await metrics.histogram("payload.size", 3, tags={"quantile": "0.5"})
        # names that merely look alike are fine
        for tags in ({"route": "/a"}, {"route": "/b", "level": "1"}, {"LE": "x"}, {"_private": "y"}, None):
            await metrics.histogram("payload.size", 3, tags=tags)
            await metrics.increment("payload.count", tags=tags)
        with urllib.request.urlopen(collector.url + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        metrics.shutdown()
    assert 'LE="x"' in text and 'le="5.0"' in text
    result = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    findings = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    # exit 1 is a parse error (what a histogram tagged le="big" produced); 3 is lint only, and the
    # only lint is that application metrics carry no HELP text
    assert result.returncode in (0, 3), findings
    assert all(line.endswith("no help text") for line in findings), findings
