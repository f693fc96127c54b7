"""Many worker processes, one truthful /metrics: real gunicorn and uvicorn, load through HTTP.

The apps (``tests/multiprocess_apps/``) are the guide's line, ``PrometheusCollector(port=P)``,
unchanged; the multiprocess directory comes from ``$PROMETHEUS_MULTIPROC_DIR`` or the argument.
Counts are checked exactly against the requests answered; a SIGKILLed worker is replaced while
a real Prometheus scrapes, and its ``resets()`` stays 0.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .redis_server import free_port, missing
from .test_collector_config import Prometheus, poll

APPS = Path(__file__).parent / "multiprocess_apps"
WORKERS = 4
BIN = Path(sys.executable).parent


def _need(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        missing(f"{module} not installed: pip install -e '.[test]'")


class Service:
    """One pre-fork server running an app of ``multiprocess_apps`` with ``WORKERS`` workers."""

    def __init__(self, argv: list[str], tmp: Path, redis_url: str | None, arg_dir: bool = False) -> None:
        self.port, self.app_port = free_port(), free_port()
        self.dir = tmp / "mp"
        self.dir.mkdir()
        env = {**os.environ, "YC_METRICS_PORT": str(self.port), "PYTHONPATH": str(APPS)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if arg_dir:
            env["YC_MP_ARG"] = str(self.dir)
        else:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.dir)
        if redis_url:
            env["YOKEDCACHE_REDIS_URL"] = redis_url
        argv = [a.replace("{port}", str(self.app_port)) for a in argv]
        self.log = (tmp / "server.log").open("w")
        self.proc = subprocess.Popen(argv, env=env, cwd=APPS, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            poll(lambda: self.readyz().get("workers", {}).get("reporting") == WORKERS, 60, "every worker reporting")
        except AssertionError:
            self.close()
            raise AssertionError((tmp / "server.log").read_text()[-3000:]) from None

    def get(self, path: str, port: int | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def readyz(self) -> dict:
        return json.loads(self.get("/readyz")[1])

    def families(self, path: str = "/metrics", port: int | None = None) -> dict:
        status, body = self.get(path, port)
        assert status == 200
        return {f.name: f for f in text_string_to_metric_families(body.decode())}

    def gets(self, path: str = "/metrics", port: int | None = None) -> float:
        fam = self.families(path, port).get("yokedcache_cache_gets")
        return sum(s.value for s in fam.samples if s.name.endswith("_total")) if fam else 0.0

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def load(port: int, n: int, threads: int = 4, pids: set | None = None, per_pid: dict[int, int] | None = None) -> int:
    """``n`` GETs of ``/item/<k>`` over keep-alive connections, a new one every 20 requests (so
    the accepting workers vary: a shared socket may hand a few connections all to one worker);
    returns how many answered 200 (``pids``: the workers that answered; ``per_pid``: how many each)."""
    ok = [0] * threads
    lock = threading.Lock()

    def run(t: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for i in range(t, n, threads):
            if i >= threads and (i // threads) % 20 == 0:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("GET", f"/item/k{i % 50}")
                resp = conn.getresponse()
                body = resp.read()
                if resp.status == 200:
                    ok[t] += 1
                    if pids is not None:
                        pids.add(int(body))
                    if per_pid is not None:
                        with lock:
                            per_pid[int(body)] = per_pid.get(int(body), 0) + 1
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.close()

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(ok)


def gunicorn(worker_class: str, app: str, threads: int = 1) -> list[str]:
    return [str(BIN / "gunicorn"), "-w", str(WORKERS), "-k", worker_class, "--threads", str(threads),
            "-b", "127.0.0.1:{port}", "-c", str(APPS / "gunicorn_conf.py"), app]  # fmt: skip


SERVERS = {
    "gunicorn-sync": (gunicorn("sync", "wsgi_app:app"), False),
    "gunicorn-gthread": (gunicorn("gthread", "wsgi_app:app", threads=4), False),
    "gunicorn-uvicorn-worker": (gunicorn("uvicorn.workers.UvicornWorker", "asgi_app:app"), False),
    "uvicorn-workers-argument": (
        [str(BIN / "uvicorn"), "--workers", str(WORKERS), "--port", "{port}", "--log-level", "warning", "asgi_app:app"],
        True,
    ),
}


@pytest.mark.parametrize("name", list(SERVERS))
def test_every_worker_boots_and_one_scrape_sums_the_service(name, tmp_path, redis_url):
    _need("gunicorn")
    _need("uvicorn")
    argv, arg_dir = SERVERS[name]
    service = Service(argv, tmp_path, redis_url, arg_dir=arg_dir)
    try:
        assert service.proc.poll() is None
        # a worker answers 503 until its cache exists (between CacheMetrics and YokedCache in the app)
        readyz = poll(lambda: (r := service.readyz())["status"] == "healthy" and r, 30, "/readyz healthy")
        assert readyz["workers"]["count"] == WORKERS and readyz["workers"]["unhealthy"] == 0
        pids: set[int] = set()
        sent = 300
        assert load(service.app_port, sent, pids=pids) == sent
        assert len(pids) > 1, "the load reached one worker only"
        # exact: each request is one get; every worker's figures reach the store within its interval
        poll(lambda: service.gets() == sent, 15, f"gets_total == {sent}")
        families = service.families()
        hits = sum(s.value for s in families["yokedcache_cache_hits"].samples)
        misses = sum(s.value for s in families["yokedcache_cache_misses"].samples)
        assert hits + misses == sent and misses >= 50  # 50 keys: each missed once per worker at most
        (rate,) = families["yokedcache_cache_hit_rate"].samples
        assert rate.value == pytest.approx(hits / sent)
        (keys,) = (
            families["yokedcache_cache_keys_count"].samples if "yokedcache_cache_keys_count" in families else [None]
        )
        if keys is not None:  # the shared Redis: 50 keys, not 50 x workers
            assert keys.value <= 50
        (duration,) = [s for s in families["yokedcache_cache_operation_duration_seconds"].samples
                       if s.name.endswith("_count") and s.labels["operation"] == "get"]  # fmt: skip
        assert duration.value == sent
        assert families["yokedcache_cache_gets"].documentation == "Cache GET operations by result, per key"
        assert {s.labels["cache_name"] for s in families["yokedcache_cache_gets"].samples} == {"redis"}
        # the mounted app answers the same, relative to its mount point, on the application's port
        assert service.gets("/observability/metrics", service.app_port) == sent
        status = json.loads(service.get("/observability/status.json", service.app_port)[1])
        assert status["workers"]["count"] == WORKERS and status["workers"]["reporting"] == WORKERS
        assert service.get("/observability/healthz", service.app_port)[0] == 200
    finally:
        service.close()


@pytest.mark.parametrize("name", ["gunicorn-sync", "uvicorn-workers-argument"])
def test_a_killed_worker_is_replaced_counters_never_fall_and_prometheus_sees_no_reset(name, tmp_path, redis_url):
    """gunicorn folds the dead worker in its child_exit hook; uvicorn has none, so a scrape folds
    it once it is gone and silent."""
    _need("gunicorn")
    _need("uvicorn")
    argv, arg_dir = SERVERS[name]
    service = Service(argv, tmp_path, redis_url, arg_dir=arg_dir)
    prometheus = None
    try:
        prom_dir = tmp_path / "prom"
        prom_dir.mkdir()
        (prom_dir / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": "250ms"},
            "scrape_configs": [{"job_name": "service", "static_configs": [{"targets": [f"127.0.0.1:{service.port}"]}]}],
        }))  # fmt: skip
        prometheus = Prometheus(prom_dir)
        first = load(service.app_port, 200)
        poll(lambda: service.gets() == first, 15, "phase 1 counted")
        poll(lambda: prometheus.query("yokedcache_cache_gets_total"), 30, "prometheus scraping")

        seen = [service.gets()]
        stop = threading.Event()
        answered = [0]
        by_pid: dict[int, int] = {}

        def background() -> None:
            while not stop.is_set():
                answered[0] += load(service.app_port, 40, threads=2, per_pid=by_pid)

        def scrape() -> None:
            while not stop.is_set():
                try:
                    seen.append(service.gets())
                except (OSError, AssertionError, http.client.HTTPException):
                    pass  # the killed worker's accept queue: a scrape may fail, never go down

        threads = [threading.Thread(target=background), threading.Thread(target=scrape)]
        for t in threads:
            t.start()
        victim = service.readyz()["workers"]["workers"][0]["pid"]
        os.kill(victim, signal.SIGKILL)
        poll(lambda: victim not in {w["pid"] for w in service.readyz()["workers"]["workers"]}
             and service.readyz()["workers"]["reporting"] == WORKERS, 30, "the replacement reporting")  # fmt: skip
        stop.set()
        for t in threads:
            t.join()
        stopped = time.time()  # no request in flight after this
        # every live worker wrote after the load stopped: the sum is final
        poll(lambda: all(w["written_at"] > stopped for w in service.readyz()["workers"]["workers"]),
             15, "writes after the load")  # fmt: skip
        settled = service.gets()
        seen.append(settled)
        assert all(b >= a for a, b in itertools.pairwise(seen)), "a summed counter went down"
        assert first <= settled <= first + answered[0] + 40  # at most the killed worker's unwritten second lost
        # only the killed worker may lose counts (what it had not written yet): every survivor's are all there
        survivors = sum(count for pid, count in by_pid.items() if pid != victim)
        assert settled >= first + survivors, f"{first} + {survivors} answered by live workers, {settled} counted"

        pids: set[int] = set()
        third = load(service.app_port, 300, pids=pids)
        assert third == 300
        poll(lambda: service.gets() == settled + third, 15, "phase 3 counted exactly")
        workers = {w["pid"] for w in service.readyz()["workers"]["workers"]}
        assert pids & workers - {victim}, "the replacement's counts add to the sum"
        poll(lambda: service.gets() and not list(service.dir.glob(f"*_{victim}-*")), 15, "the dead worker folded")

        poll(lambda: float(prometheus.query("sum(yokedcache_cache_gets_total)")[0]["value"][1]) == settled + third,
             30, "prometheus caught up")  # fmt: skip
        (resets,) = prometheus.query("sum(resets(yokedcache_cache_gets_total[5m]))")
        assert float(resets["value"][1]) == 0, "Prometheus saw a counter reset (a drop)"
        # no spike: no scrape ever saw more than the final count (a dead worker counted twice would)
        highest = prometheus.query("max_over_time(sum(yokedcache_cache_gets_total)[5m:250ms])")
        points = prometheus.query("count_over_time(sum(yokedcache_cache_gets_total)[5m:250ms])")
        print(f"kill test: phase 1 {first}, answered during the kill {answered[0]}, settled {settled} "
              f"(lost {first + answered[0] - settled}), phase 3 {third}, our scrapes {len(seen)}, "
              f"prometheus points {points[0]['value'][1]}, highest {highest[0]['value'][1]}")  # fmt: skip
        assert float(highest[0]["value"][1]) <= settled + third, "a spike: counts seen twice"
    finally:
        if prometheus is not None:
            prometheus.close()
        service.close()


_SEED = """
import sys, time
from yokedcache.monitoring import CacheMetrics, PrometheusCollector
metrics = CacheMetrics([PrometheusCollector(port={port})])
print("up", flush=True)
sys.stdin.readline()
"""


def test_two_processes_with_the_guides_line_both_start_and_one_answers_for_both(tmp_path):
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", _SEED.format(port=port)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "up", p.stderr.read()

        def workers() -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")  # 503: no cache reports yet; the workers are there
            count = json.loads(conn.getresponse().read())["workers"]["count"]
            conn.close()
            return int(count)

        poll(lambda: workers() == 2, 15, "both processes in the store")
        assert {workers() for _ in range(6)} == {2}  # whichever process the kernel hands a scrape to
        status, _body = Service.get(None, "/metrics", port)  # type: ignore[arg-type]
        assert status == 200
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=10)
    # without a directory the second still refuses, and says why
    env.pop("PROMETHEUS_MULTIPROC_DIR")
    first = subprocess.Popen([sys.executable, "-c", _SEED.format(port=port)], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert first.stdout.readline().strip() == "up"
        second = subprocess.run([sys.executable, "-c", _SEED.format(port=port)], env=env, input="", capture_output=True,
                                text=True, timeout=30)  # fmt: skip
        assert second.returncode != 0 and f"port {port} on 127.0.0.1 is already in use" in second.stderr
    finally:
        first.stdin.close()
        first.wait(timeout=10)


def test_the_prefork_example_scrapes_every_worker_once():
    from .test_examples import run_example

    out = run_example("prefork_workers.py", WORKERS="3", METRICS_PORT=str(free_port()))
    assert out.count("done") == 3
    assert "for 3 workers: hits 270, misses 30" in out  # 3 x (90 hits, 10 misses), summed by one scrape


_PRELOAD = """
import os
from yokedcache.monitoring import CacheMetrics, PrometheusCollector
metrics = CacheMetrics([PrometheusCollector(port=None)])
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
metrics.shutdown()
"""


def test_a_worker_forked_after_the_telemetry_was_built_says_it_does_not_report(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", _PRELOAD], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("CacheMetrics was built before this worker was forked") == 1, result.stderr
