"""Figures the manual states that are arithmetic of the code, recomputed here (the command the
manual names for them). A change to the estimator or the encoding that moves a figure fails
until the page says the new one: docs/operations.md (statistics), docs/telemetry.md (StatsD)."""

from __future__ import annotations

from pathlib import Path

from yokedcache.backends.redis_usage import Sample, combine

DOCS = Path(__file__).resolve().parent.parent / "docs"
OPERATIONS = (DOCS / "operations.md").read_text(encoding="utf-8")
TELEMETRY = (DOCS / "telemetry.md").read_text(encoding="utf-8")


def test_sampled_statistics_error_figures():
    # 500 random keys of a 100,000-key database, none under the prefix: the 95 % half-width
    none = combine([Sample(0, False, 100_000, 500, 0, 0.0, 0.0)], None)
    assert (none.keys, none.keys_error) == (0, 549)
    assert "0.3 % of 100,000 keys reads 0 +- 549" in OPERATIONS
    # the widest case, half the sample matching: about 4.4 % of DBSIZE
    half = combine([Sample(0, False, 100_000, 500, 250, 25_000.0, 2_500_000.0)], None)
    assert round(100 * half.keys_error / 100_000, 1) == 4.4
    assert "at most about +-4.4 % of `DBSIZE`" in OPERATIONS.replace("\n", " ").replace("  ", " ")


def test_the_old_statsd_sample_rate_lost_a_sample_for_49748_counts():
    # `@1/count` written with 15 decimals, decoded with int(1/rate) as the Datadog agent and the
    # Collector's statsd receiver do
    lost = sum(1 for count in range(2, 100_001) if int(1 / float(f"{1 / count:.15f}")) != count)
    assert lost == 49_748
    assert "lost one sample for 49,748 of them" in TELEMETRY
