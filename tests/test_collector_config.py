"""The shipped collector-config/ files, checked by the real tools and against a real Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from .redis_server import RedisServer, free_port, in_ci

CONFIG = Path(__file__).resolve().parent.parent / "collector-config"
PROM = CONFIG / "prometheus"
DASHBOARD = CONFIG / "grafana" / "dashboards" / "yokedcache.json"
PROMETHEUS_HINT = "promtool/prometheus not found: install them with 'apt-get install -y prometheus' (Debian/Ubuntu)"


def require(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        if in_ci():
            pytest.fail(PROMETHEUS_HINT, pytrace=False)
        pytest.skip(PROMETHEUS_HINT)
    return found


def promtool(*args: str, cwd: Path = PROM) -> str:
    result = subprocess.run([require("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# -- promtool -------------------------------------------------------------------------------
def test_promtool_check_config():
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")


def test_promtool_check_rules():
    assert "SUCCESS: 8 rules found" in promtool("check", "rules", "alerts.yml")


def test_promtool_test_rules():
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml")


def test_every_alert_has_a_unit_test():
    rules = {r["alert"] for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]}
    tests = yaml.safe_load((PROM / "alerts.test.yml").read_text())["tests"]
    fired = {
        case["alertname"] for t in tests for case in t.get("alert_rule_test", ()) if case.get("exp_alerts")
    }  # fmt: skip
    assert rules == fired


# -- Collector, Grafana and Compose files ----------------------------------------------------
#: Keys each component accepts (current contrib Collector); a typo or a removed name fails here.
COMPONENT_KEYS = {
    ("receivers", "otlp"): {"protocols"},
    ("receivers", "statsd"): {"endpoint", "transport", "aggregation_interval", "enable_metric_type",
                              "is_monotonic_counter", "timer_histogram_mapping", "enable_simple_tags"},
    ("processors", "batch"): {"timeout", "send_batch_size", "send_batch_max_size"},
    ("processors", "transform"): {"error_mode", "metric_statements", "trace_statements", "log_statements"},
    ("processors", "memory_limiter"): {"check_interval", "limit_mib", "spike_limit_mib", "limit_percentage",
                                       "spike_limit_percentage"},
    ("exporters", "prometheus"): {"endpoint", "namespace", "const_labels", "send_timestamps", "metric_expiration",
                                  "enable_open_metrics", "resource_to_telemetry_conversion"},
    ("exporters", "otlp_grpc"): {"endpoint", "tls", "headers", "compression", "timeout", "retry_on_failure",
                                 "sending_queue"},
    ("exporters", "otlp_http"): {"endpoint", "tls", "headers", "compression", "timeout", "retry_on_failure",
                                 "sending_queue"},
    ("exporters", "debug"): {"verbosity", "sampling_initial", "sampling_thereafter"},
}  # fmt: skip
DEPRECATED = {"otlp": "otlp_grpc", "otlphttp": "otlp_http", "logging": "debug", "jaeger": "otlp_grpc"}


@pytest.mark.parametrize("name", ["otel-collector.yaml", "otel-collector-statsd.yaml"])
def test_collector_config_uses_current_components_and_keys(name):
    config = yaml.safe_load((CONFIG / name).read_text())
    for kind in ("receivers", "processors", "exporters"):
        for component_id, settings in (config.get(kind) or {}).items():
            component_type = component_id.split("/", 1)[0]
            if kind == "exporters":
                assert component_type not in DEPRECATED, f"{component_id}: use {DEPRECATED[component_type]}"
            allowed = COMPONENT_KEYS.get((kind, component_type))
            assert allowed is not None, f"{kind}.{component_id}: unknown component"
            assert set(settings or {}) <= allowed, f"{kind}.{component_id}: {set(settings) - allowed}"
    pipelines = config["service"]["pipelines"]
    assert pipelines
    for pipeline_id, pipeline in pipelines.items():
        assert pipeline_id.split("/", 1)[0] in ("metrics", "traces", "logs")
        for kind in ("receivers", "processors", "exporters"):
            for component_id in pipeline.get(kind, ()):
                assert component_id in (config.get(kind) or {}), f"{pipeline_id} uses undefined {component_id}"
    for mapping in (config["receivers"].get("statsd") or {}).get("timer_histogram_mapping", ()):
        assert mapping["statsd_type"] in ("histogram", "timing", "distribution")
        assert mapping["observer_type"] in ("gauge", "summary", "histogram")
        # the receiver's Config.Validate / validateExplicitBuckets (receiver/statsdreceiver/config.go)
        histogram = mapping.get("histogram") or {}
        assert set(histogram) <= {"max_size", "max_scale", "explicit_buckets"}
        assert not histogram or mapping["observer_type"] == "histogram"
        assert 2 <= histogram.get("max_size", 160) <= 16384
        for explicit in histogram.get("explicit_buckets", ()):
            assert set(explicit) == {"matcher_pattern", "buckets"}
            re.compile(explicit["matcher_pattern"])
            assert explicit["buckets"] and explicit["buckets"] == sorted(explicit["buckets"])
    for component_id, settings in (config.get("processors") or {}).items():
        if component_id.split("/", 1)[0] == "transform":
            assert settings.get("error_mode", "propagate") in ("ignore", "silent", "propagate")
            for group in settings["metric_statements"]:
                assert group["context"] in ("resource", "scope", "metric", "datapoint")
                assert group["statements"]


def test_grafana_dashboard_is_current_and_provisioned():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] == "yokedcache"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"job", "instance", "cache"} <= set(variables)  # caches told apart by cache.name
    for panel in dashboard["panels"]:
        assert panel["type"] in ("stat", "timeseries"), panel["title"]  # no removed singlestat/graph
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"] and 'instance=~"$instance"' in target["expr"]
            assert 'cache_name=~"$cache"' in target["expr"] and "{{cache_name}}" in target["legendFormat"]
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    quantile = "histogram_quantile(0.99, sum by (cache_name, le, operation) (rate(yokedcache_cache_operation_duration"
    assert quantile in exprs
    provider = yaml.safe_load((CONFIG / "grafana/provisioning/dashboards/yokedcache.yaml").read_text())
    datasource = yaml.safe_load((CONFIG / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    compose = yaml.safe_load((CONFIG / "docker-compose.yaml").read_text())
    grafana_mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in compose["services"]["grafana"]["volumes"])
    assert grafana_mounts["./grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert datasource["datasources"][0]["type"] == "prometheus"


def test_compose_mounts_files_that_exist():
    compose = yaml.safe_load((CONFIG / "docker-compose.yaml").read_text())
    for service in compose["services"].values():
        for volume in service.get("volumes", ()):
            assert (CONFIG / volume.split(":", 1)[0]).exists(), volume


# -- a real Prometheus scraping `yokedcache demo` --------------------------------------------
_COMPARISON = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*[-+0-9.eE]+\s*$")


def alert_expressions() -> dict[str, str]:
    """Each rule's expression without its threshold: the series it watches must exist."""
    groups = yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
    return {r["alert"]: _COMPARISON.sub("", r["expr"].strip()) for g in groups for r in g["rules"]}


def dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    out = {}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$job", ".*").replace("$instance", ".*").replace("$cache", ".*")
            expr = expr.replace("$__rate_interval", "1m")
            out[f"{panel['title']} / {target['refId']}"] = expr
    return out


class Prometheus:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [require("prometheus"), f"--config.file={directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=(directory / "prometheus.log").open("w"),
        )  # fmt: skip

    def get(self, path: str, **params: str) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as resp:
            return json.loads(resp.read())

    def query(self, expr: str) -> list:
        body = self.get("/api/v1/query", query=expr)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def poll(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except OSError:
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def test_real_prometheus_scrapes_the_demo_every_expression_has_data_and_an_outage_fires(tmp_path):
    require("prometheus")
    redis = RedisServer()
    redis.start()
    app_port = free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "yokedcache", "demo", "--redis-url", redis.url(), "--port", str(app_port),
         "--rate", "300", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    prometheus = None
    try:
        poll(lambda: urllib.request.urlopen(f"http://127.0.0.1:{app_port}/metrics", timeout=2).status == 200,
             20, "the demo's /metrics")  # fmt: skip

        # The shipped config, with only the intervals shortened and the targets pointed at this run.
        shutil.copytree(PROM, tmp_path / "prometheus")
        directory = tmp_path / "prometheus"
        config = yaml.safe_load((directory / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        (directory / "targets" / "app.json").write_text(json.dumps([{"targets": [f"127.0.0.1:{app_port}"]}]))
        (directory / "targets" / "collector.json").write_text("[]")
        prometheus = Prometheus(directory)
        poll(lambda: urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2).status == 200, 30, "prometheus")

        expressions = {**{f"alert {k}": v for k, v in alert_expressions().items()}, **dashboard_expressions()}
        for name, expr in expressions.items():
            poll(lambda expr=expr: prometheus.query(expr), 30, f"data for {name}: {expr}")
        assert {"Hit rate (5m) / A", "Evictions per second / A"} <= set(expressions)
        # The windowed hit rate is a real ratio of the demo's gets (it has hits and misses).
        (stat,) = prometheus.query(expressions["Hit rate (5m) / A"])
        assert 0 < float(stat["value"][1]) < 1, stat
        for label in ("job", "instance"):  # the dashboard's variables
            values = prometheus.get(
                f"/api/v1/label/{label}/values", **{"match[]": "yokedcache_cache_operation_duration_seconds_count"}
            )["data"]
            assert values, label  # fmt: skip

        def alerts() -> dict[str, str]:
            return {a["labels"]["alertname"]: a["state"] for a in prometheus.get("/api/v1/alerts")["data"]["alerts"]}

        assert "YokedCacheCircuitBreakerOpen" not in alerts()
        redis.stop()  # the outage
        poll(lambda: alerts().get("YokedCacheCircuitBreakerOpen") == "firing", 30, "the breaker alert to fire")
        assert alerts().get("YokedCacheRedisDown") in ("pending", "firing")
    finally:
        if prometheus is not None:
            prometheus.close()
        app.send_signal(signal.SIGINT)
        try:
            out, err = app.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            app.kill()
            out, err = app.communicate()
        redis.close()
    assert app.returncode == 0, err
    assert "operations" in out and "Traceback" not in err
