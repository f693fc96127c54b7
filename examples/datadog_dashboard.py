"""docs/monitoring.md's 'DataDog Dashboard', with queries that name what the StatsD bridge really sends.

    python examples/datadog_dashboard.py            # print the dashboard JSON
    python examples/datadog_dashboard.py --create   # create it (pip install datadog; DD_API_KEY, DD_APP_KEY)

Send the metrics with ``StatsDCollector(host=<agent>, port=8125, prefix="myapp.cache", use_tags=True)``
to a DataDog agent (DogStatsD). What arrives, and how DataDog names it:

- counters (``|c``, per-flush deltas): ``myapp.cache.gets`` (tag ``result:hit|miss``), ``.sets``,
  ``.deletes``, ``.hits``, ``.misses``, ``.invalidations``, ``.errors`` (tags ``operation``, ``error.type``)
- gauges (``|g``): ``myapp.cache.hit_rate`` (0-1), ``.size_bytes``, ``.keys_count``, ``.health``,
  ``.circuit_breaker.state`` (0/1/2), ``.pool.utilization``
- the duration histogram (``|ms`` timer, milliseconds, tag ``operation``): DataDog derives
  ``myapp.cache.operation_duration.avg``, ``.median``, ``.95percentile``, ``.max``, ``.count``
"""

import argparse
import json
import os

PREFIX = os.environ.get("STATSD_PREFIX", "myapp.cache")


def timeseries(title: str, *queries: str, display: str = "line") -> dict:
    return {
        "definition": {
            "type": "timeseries",
            "title": title,
            "requests": [{"q": q, "display_type": display} for q in queries],
        }
    }


# Create dashboard
dashboard = {
    "title": "YokedCache Monitoring",
    "description": "Monitor YokedCache performance and health",
    "layout_type": "ordered",
    "widgets": [
        timeseries("Cache Hit Rate", f"avg:{PREFIX}.hit_rate{{*}}"),
        timeseries(
            "Cache Operations",
            f"sum:{PREFIX}.gets{{*}} by {{result}}.as_rate()",
            f"sum:{PREFIX}.sets{{*}}.as_rate()",
            f"sum:{PREFIX}.deletes{{*}}.as_rate()",
        ),
        timeseries(
            "Operation Latency (s)",
            f"avg:{PREFIX}.operation_duration.median{{*}} by {{operation}}",
            f"avg:{PREFIX}.operation_duration.95percentile{{*}} by {{operation}}",
        ),
        timeseries("Errors", f"sum:{PREFIX}.errors{{*}} by {{operation,error.type}}.as_count()", display="bars"),
        timeseries(
            "Backend health and circuit breaker",
            f"min:{PREFIX}.health{{*}}",
            f"max:{PREFIX}.circuit_breaker.state{{*}}",
        ),
        timeseries("Size", f"sum:{PREFIX}.size_bytes{{*}}", f"sum:{PREFIX}.keys_count{{*}}"),
        timeseries("Connection pool utilisation", f"max:{PREFIX}.pool.utilization{{*}}"),
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--create", action="store_true", help="create the dashboard through the DataDog API")
    args = parser.parse_args()
    if not args.create:
        print(json.dumps(dashboard, indent=2))
        return
    try:
        from datadog import api, initialize
    except ImportError:
        raise SystemExit("--create needs the DataDog client: pip install datadog") from None

    # Setup DataDog
    initialize(api_key=os.environ["DD_API_KEY"], app_key=os.environ["DD_APP_KEY"])
    api.Dashboard.create(**dashboard)


if __name__ == "__main__":
    main()
