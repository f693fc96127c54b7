"""One ``/metrics`` for many worker processes, on ``prometheus_client``'s multiprocess store.

Pre-fork servers (gunicorn, ``uvicorn --workers``) run the application in several processes.
Each one's SDK holds only its own counts, and the OTel Prometheus exporter cannot merge
processes (opentelemetry-python#3747). ``prometheus_client`` can: every process writes its
samples to mmap'd ``.db`` files in one directory, and ``MultiProcessCollector`` sums them at
scrape time, including the files of processes that died. This module feeds that store from the
SDK instead of from ``prometheus_client`` metrics:

- **Writing** (``ProcessStore``): at collection time, never per operation. A daemon thread
  collects the SDK every ``interval`` seconds (and each scrape collects the answering process
  first) through the same reader that serves a single process, so names, help texts and
  labels are the single-process ones. The cumulative values *replace* this process's files
  (written aside, then renamed: a reader never sees half a file). A SIGKILLed worker loses what
  it counted since its last write, at most ``interval`` seconds of counts.
- **Merging** (``MergedView``): ``MultiProcessCollector.merge`` over every file, then the gauge
  rules below, then ``hit_rate`` from the summed hits and misses.
- **Dead workers** (``fold_dead``): a dead process's counters and histograms are added into one
  ``*_archive.db`` file per type and its files deleted, under an exclusive ``flock`` that every
  merge holds shared, so no scrape sees them twice or not at all. The directory therefore holds
  the live workers' files plus two archives, however many workers were replaced. gunicorn's
  ``child_exit`` hook folds at once; without it (``uvicorn --workers``) a scrape folds a
  process that no longer exists and has not written for ``3 * interval`` seconds.

Gauges across workers (each rule is one of ``prometheus_client``'s multiprocess modes):

============================================  =============================================
``cache_keys_count``, ``cache_size_bytes``    Redis (shared): the most recent reading, not
                                              multiplied by the workers. Memory: summed.
``cache_hit_rate``                            summed hits / (summed hits + summed misses)
``cache_pool_*`` / ``db_client_connection_*`` summed (the service's connections), except
                                              ``pool_utilization``: the busiest worker's
``cache_health``                              the minimum (1 only when every worker is up)
``cache_circuit_breaker_state``               the maximum (the worst breaker)
``target_info``, application gauges           one series per worker (``target_info``, whose
                                              labels differ) / the most recent value
============================================  =============================================
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .._extras import require
from ..telemetry.names import MAX_CACHE_NAMES, OTHER_NAME

require("prometheus_client", "prometheus")

from prometheus_client.metrics_core import Metric  # noqa: E402
from prometheus_client.mmap_dict import MmapedDict, mmap_key  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402
from prometheus_client.samples import Sample  # noqa: E402

__all__ = [
    "ENV",
    "MergedView",
    "ProcessStore",
    "ServiceReadiness",
    "fold_dead",
    "multiprocess_dir",
    "service_workers",
    "shares_backend",
    "worker_state",
]

log = logging.getLogger("yokedcache.monitoring.multiprocess")

#: The variable ``prometheus_client`` reads (its lower-case spelling is deprecated there too).
ENV = "PROMETHEUS_MULTIPROC_DIR"
_LOCK_FILE = ".yokedcache.lock"
_ARCHIVE = "archive"
#: A process that no longer exists is folded once its last write is this many intervals old.
STALE_INTERVALS = 3.0


def multiprocess_dir(argument: Any = None) -> str | None:
    """The store's directory: ``argument``, else ``$PROMETHEUS_MULTIPROC_DIR``, else ``None``
    (single-process mode). Created when missing."""
    if argument is None:
        argument = os.environ.get(ENV) or os.environ.get(ENV.lower()) or None
        if argument is None:
            return None
    if not isinstance(argument, (str, os.PathLike)):
        raise TypeError(f"multiprocess_dir: expected a directory path, got {type(argument).__name__}")
    path = os.fspath(argument)
    if not path:
        raise ValueError("multiprocess_dir: expected a directory path, got ''")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"multiprocess_dir: {path!r} is not a usable directory ({exc.strerror})") from None
    return path


@contextlib.contextmanager
def _locked(path: str, exclusive: bool) -> Iterator[None]:
    """Folding dead workers (exclusive) against merging (shared): see the module docstring."""
    fd = os.open(os.path.join(path, _LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_file(target: str, entries: Iterable[tuple[str, float, float]]) -> None:
    """``entries`` (key, value, timestamp) as a fresh ``MmapedDict`` file at ``target``, atomically."""
    tmp = f"{target}.{secrets.token_hex(4)}.tmp"  # not *.db: no merge reads it half-written
    store = MmapedDict(tmp)
    try:
        for key, value, timestamp in entries:
            store.write_value(key, value, timestamp)
    finally:
        store.close()
    os.replace(tmp, target)


def _gauge_mode(suffix: str, shared: bool) -> str | None:
    """How a gauge family combines across workers (``None``: recomputed after merging)."""
    if suffix.endswith(("cache_keys_count", "cache_size_bytes")):
        return "mostrecent" if shared else "sum"
    if suffix.endswith("cache_hit_rate"):
        return None
    if suffix.endswith("cache_pool_utilization") or suffix.endswith("cache_circuit_breaker_state"):
        return "max"
    if suffix.endswith(("cache_pool_connections", "cache_pool_max")) or "db_client_connection_" in suffix:
        return "sum"
    if suffix.endswith("cache_health"):
        return "min"
    if suffix == "target_info":
        return "max"
    return "mostrecent"


def _entries(family: Any, now: float) -> Iterator[tuple[str, str, float, float]]:
    """``(file type, key, value, timestamp)`` for one family's samples, in the store's layout:
    histogram buckets per bucket (the merge accumulates them again; empty ones left out, and put
    back by ``_complete``), no ``_count`` or ``_created``."""
    if family.type == "histogram":
        previous: dict[tuple[tuple[str, str], ...], float] = {}
        for s in family.samples:
            if s.name.endswith("_bucket"):
                rest = tuple((k, v) for k, v in s.labels.items() if k != "le")
                value = s.value - previous.get(rest, 0.0)
                previous[rest] = s.value
                if not value:  # most buckets are empty: the merge reads what is written, at every scrape
                    continue
            elif s.name.endswith("_sum"):
                value = s.value
            else:
                continue
            yield "histogram", _key(family, s), value, 0.0
    elif family.type == "counter":
        for s in family.samples:
            if s.name.endswith("_total"):
                yield "counter", _key(family, s), s.value, 0.0
    elif family.type in ("gauge", "unknown", "info"):
        for s in family.samples:
            yield "gauge", _key(family, s), s.value, now


def _key(family: Any, sample: Any) -> str:
    # An info family (target_info) is rendered as a gauge of its sample's name: store it so.
    name = sample.name if family.type == "info" else family.name
    return str(mmap_key(name, sample.name, list(sample.labels), list(sample.labels.values()), family.documentation))


class ProcessStore:
    """This process's files in the store, rewritten from the SDK's collection.

    ``collect`` returns the process's prometheus_client families (the reader's, as a
    single-process scrape renders them); ``shared()`` says whether its caches share one remote
    backend (the key and byte gauges then take the most recent reading instead of the sum).
    """

    def __init__(self, path: str, prefix: str, collect: Callable[[], Iterable[Any]], shared: Callable[[], bool],
                 interval: float = 1.0, status: Callable[[], dict[str, Any]] | None = None) -> None:  # fmt: skip
        self.path = path
        self.prefix = prefix
        self.pid = os.getpid()
        self.token = f"{self.pid}-{secrets.token_hex(4)}"
        self.interval = interval
        self._collect = collect
        self._shared = shared
        self._status = status
        self._lock = threading.Lock()
        self._written: set[str] = set()
        #: Units and label value spellings of the last collection, to give the merged families back.
        self.units: dict[str, str] = {}
        self.docs: dict[str, str] = {}
        self.bounds: dict[str, list[str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def set_sources(self, shared: Callable[[], bool], status: Callable[[], dict[str, Any]]) -> None:
        """What only the bound provider knows: whether the caches share a remote backend, and
        this worker's state for its heartbeat."""
        self._shared = shared
        self._status = status

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"yokedcache-mp-{self.token}", daemon=True)
        self._thread.start()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forked(ref))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.write()
            except Exception as exc:  # a full disk must not end the worker's metrics for good
                log.warning("multiprocess store write failed: %s", type(exc).__name__)

    def write(self) -> None:
        """Replace this process's files with the SDK's current figures."""
        with self._lock:
            if self._closed or os.getpid() != self.pid:  # a forked child must not write under its parent's name
                return
            now = time.time()
            families = list(self._collect())
            if not families:  # never replace counts with nothing (a provider already shut down)
                self._heartbeat(now)
                return
            shared = self._shared()
            by_file: dict[str, list[tuple[str, float, float]]] = {}
            for family in families:
                if family.unit:
                    self.units[family.name] = family.unit
                self.docs[family.name] = family.documentation
                if family.type == "histogram":
                    self.bounds[family.name] = _bounds(family)
                suffix = "target_info" if family.type == "info" else family.name[len(self.prefix) + 1 :]
                mode = _gauge_mode(suffix, shared) if family.type != "counter" else ""
                if family.type in ("gauge", "unknown", "info") and mode is None:
                    continue
                for typ, key, value, ts in _entries(family, now):
                    name = f"gauge_{mode}" if typ == "gauge" else typ
                    by_file.setdefault(name, []).append((key, value, ts))
            files = {f"{name}_{self.token}.db": entries for name, entries in by_file.items()}
            for name, entries in files.items():
                _write_file(os.path.join(self.path, name), entries)
            for gone in self._written - files.keys():  # a gauge family that has no series any more
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.path, gone))
            self._written = set(files)
            self._heartbeat(now)

    def _heartbeat(self, now: float) -> None:
        """``worker_<token>.json``: who this worker is and how its caches are, for ``/readyz``."""
        doc = {"pid": self.pid, "written_at": now, "interval": self.interval}
        if self._status is not None:
            doc.update(self._status())
        target = os.path.join(self.path, f"worker_{self.token}.json")
        tmp = f"{target}.{secrets.token_hex(4)}.tmp"
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(doc, out)
        os.replace(tmp, target)

    def close(self) -> None:
        """Stop the thread and write one last time: a worker that exits cleanly loses nothing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.write()
        except Exception as exc:
            log.warning("multiprocess store final write failed: %s", type(exc).__name__)
        self._closed = True


def _forked(ref: weakref.ref[ProcessStore]) -> None:
    """In a child forked after the store started (gunicorn ``--preload``): the writer thread and
    the HTTP server did not survive the fork, and the SDK's state is the parent's. Say so once
    instead of writing the parent's figures under a second name."""
    store = ref()
    if store is not None and not store._closed:
        log.warning(
            "CacheMetrics was built before this worker was forked (gunicorn --preload?): pid %d does not "
            "report; build it in the worker (docs/multiprocess.md)",
            os.getpid(),
        )


def _token_of(filename: str) -> str:
    """``counter_123-ab12cd34.db`` -> ``123-ab12cd34`` (``archive`` for the archives)."""
    stem = os.path.basename(filename).rsplit(".", 1)[0]
    return stem.rsplit("_", 1)[-1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _dead_tokens(path: str, own: str | None, now: float) -> set[str]:
    """Tokens of processes gone: not running here, and silent for ``STALE_INTERVALS`` writes.

    Both, because a worker in another PID namespace (another container on the same volume)
    is invisible to ``kill(pid, 0)`` but keeps writing."""
    dead = set()
    for beat in glob.glob(os.path.join(path, "worker_*.json")):
        token = _token_of(beat)
        if token == own:
            continue
        try:
            with open(beat, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        silent = now - float(doc.get("written_at", 0)) > STALE_INTERVALS * float(doc.get("interval", 1.0))
        if silent and not _alive(int(doc.get("pid", 0))):
            dead.add(token)
    return dead


def fold_dead(path: str, pids: Iterable[int] | None = None, own: str | None = None) -> int:
    """Fold dead workers into the archives; returns how many. ``pids``: these processes are
    known dead (gunicorn's ``child_exit``); otherwise those that look dead (see ``_dead_tokens``)."""
    with _locked(path, exclusive=True):
        if pids is not None:
            wanted = {str(p) for p in pids}
            names = glob.glob(os.path.join(path, "*_*-*.db")) + glob.glob(os.path.join(path, "worker_*-*.json"))
            tokens = {t for t in map(_token_of, names) if t.split("-", 1)[0] in wanted}
        else:
            tokens = _dead_tokens(path, own, time.time())
        if not tokens:
            return 0
        for typ in ("counter", "histogram"):
            files = [os.path.join(path, f"{typ}_{t}.db") for t in tokens]
            files = [f for f in files if os.path.exists(f)]
            if not files:
                continue
            archive = os.path.join(path, f"{typ}_{_ARCHIVE}.db")
            merged = MultiProcessCollector.merge(files + ([archive] if os.path.exists(archive) else []),
                                                 accumulate=False)  # fmt: skip
            _write_file(archive, _store_entries(merged))
        # One listing, no glob per token: fnmatch caches every pattern it compiles (up to 32,768),
        # so a pattern per dead worker would grow the scraping process with each restart.
        for name in os.listdir(path):
            if name.endswith((".db", ".json")) and _token_of(name) in tokens:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(path, name))
        return len(tokens)


def _store_entries(families: Iterable[Any]) -> Iterator[tuple[str, float, float]]:
    for family in families:
        for s in family.samples:
            yield str(mmap_key(family.name, s.name, list(s.labels), list(s.labels.values()), family.documentation)), \
                s.value, 0.0  # fmt: skip


def workers(path: str, stale_after: float | None = None) -> list[dict[str, Any]]:
    """Every worker's last heartbeat, each with ``reporting``: written within
    ``STALE_INTERVALS`` of its interval (a worker that stopped shows ``False`` until folded)."""
    now = time.time()
    out = []
    for beat in sorted(glob.glob(os.path.join(path, "worker_*.json"))):
        try:
            with open(beat, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        limit = stale_after if stale_after is not None else STALE_INTERVALS * float(doc.get("interval", 1.0))
        doc["reporting"] = now - float(doc.get("written_at", 0)) <= limit
        doc["age_seconds"] = round(now - float(doc.get("written_at", 0)), 3)
        out.append(doc)
    return out


class MergedView:
    """The prometheus_client collector a multiprocess scrape renders: every worker's files,
    merged, after this process wrote its own and dead workers were folded."""

    def __init__(self, store: ProcessStore) -> None:
        self.store = store

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        store = self.store
        store.write()
        fold_dead(store.path, own=store.token)
        with _locked(store.path, exclusive=False):
            files = glob.glob(os.path.join(store.path, "*.db"))
            families = list(MultiProcessCollector.merge(files, accumulate=True))
        return _finish(families, store)


def _finish(families: list[Any], store: ProcessStore) -> list[Any]:
    """The merged families as a single process renders them: units back, every bucket of each
    histogram series in bucket/count/sum order, and ``hit_rate`` from the summed hits and misses."""
    prefix, units, docs = store.prefix, store.units, store.docs
    _cap(families)
    by_name = {f.name: f for f in families}
    out = []
    for family in families:
        unit = units.get(family.name, "")
        if unit:
            family.unit = unit
        if family.type == "histogram":
            family.samples = _complete(family, store.bounds.get(family.name, []))
        out.append(family)
    name = f"{prefix}_cache_hit_rate"
    rate = _hit_rate(by_name.get(f"{prefix}_cache_hits"), by_name.get(f"{prefix}_cache_misses"), name, docs.get(name))
    if rate is not None:
        out.append(rate)
    return out


def _cap(families: list[Any]) -> None:
    """The name cap over the whole service: each worker caps its own names (``telemetry/names.py``),
    but workers that met different names would together report more than 64. Beyond 64, the merged
    view keeps the first 64 names in sorted order (the same whichever worker answers, and stable
    while no new name sorts before them) and folds the rest into ``_other``, summed (the most a
    gauge that is a maximum or a minimum can say is the extreme over the folded series)."""
    names = sorted(
        {n for f in families for s in f.samples if (n := s.labels.get("cache_name")) is not None} - {OTHER_NAME}
    )
    if len(names) <= MAX_CACHE_NAMES:
        return
    kept = set(names[:MAX_CACHE_NAMES])
    for family in families:
        combine = _combiner(family)
        folded: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
        for sample in family.samples:
            labels = sample.labels
            if labels.get("cache_name") not in kept and "cache_name" in labels:
                labels = {**labels, "cache_name": OTHER_NAME}
            key = (sample.name, tuple(sorted(labels.items())))
            found = folded.get(key)
            value = sample.value if found is None else combine(found.value, sample.value)
            folded[key] = sample._replace(labels=labels, value=value)
        family.samples = list(folded.values())


def _combiner(family: Any) -> Callable[[float, float], float]:
    """How two series of one family fold together: summed, but a gauge whose workers' values
    combine by max or min (``_gauge_mode``) folds the same way."""
    if family.type != "gauge":
        return lambda a, b: a + b
    mode = _gauge_mode(family.name, shared=False)
    return {"max": max, "min": min}.get(mode or "", lambda a, b: a + b)


def _bounds(family: Any) -> list[str]:
    """The ``le`` values of a histogram's first series (one instrument, one set of boundaries)."""
    les: list[str] = []
    for s in family.samples:
        if s.name.endswith("_bucket"):
            if les and s.labels["le"] == les[0]:
                break
            les.append(s.labels["le"])
    return les


def _complete(family: Any, bounds: list[str]) -> list[Any]:
    """Each series as buckets (every boundary: an empty bucket holds the previous cumulative
    count), count, sum, one series after another."""
    series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for s in family.samples:
        rest = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        entry = series.setdefault(rest, {"buckets": {}, "other": []})
        if s.name.endswith("_bucket"):
            entry["buckets"][float(s.labels["le"])] = s
        else:
            entry["other"].append(s)
    out = []
    bucket_name = family.name + "_bucket"
    for rest, entry in series.items():
        found = entry["buckets"]
        les = bounds or [found[b].labels["le"] for b in sorted(found)]
        carry = 0.0
        for le in les:
            sample = found.get(float(le))
            carry = sample.value if sample is not None else carry
            out.append(Sample(bucket_name, {**dict(rest), "le": le}, carry))
        out += sorted(entry["other"], key=lambda s: s.name.endswith("_sum"))
    return out


def _hit_rate(hits: Any, misses: Any, name: str, doc: str | None) -> Any:
    if hits is None:
        return None
    missed = {_labels(s): s.value for s in misses.samples} if misses is not None else {}
    family = Metric(name, doc or "Cache hit rate since start (0-1)", "gauge")
    for s in hits.samples:
        total = s.value + missed.get(_labels(s), 0.0)
        if total:
            family.samples.append(Sample(family.name, dict(s.labels), s.value / total))
    return family if family.samples else None


def _labels(sample: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(sample.labels.items()))


def shares_backend(members: Iterable[Any]) -> bool:
    """Whether the caches reporting here use a remote (shared) backend: their key and byte
    gauges then describe one store that every worker sees, not a per-worker one."""
    for member in members:
        cache = member.owner() if member.owner is not None else None
        if cache is not None and cache.backend.remote:
            return True
    return False


def worker_state(members: Iterable[Any]) -> dict[str, Any]:
    """This worker's heartbeat content: its caches and whether each is up, from state already
    read (no ping: the heartbeat is written every interval)."""
    caches: dict[str, bool] = {}
    for member in members:
        state = member.state()
        healthy = state is None or state.healthy
        caches[member.name] = caches.get(member.name, True) and healthy
    return {"caches": caches, "status": "healthy" if all(caches.values()) else "unhealthy"}


def service_workers(path: str) -> dict[str, Any]:
    """The workers of the service as ``/readyz`` and ``/status.json`` show them: a total, how
    many report, and a row per worker (``reporting: false`` for one that stopped)."""
    rows = workers(path)
    return {
        "count": len(rows),
        "reporting": sum(1 for r in rows if r["reporting"]),
        "unhealthy": sum(1 for r in rows if r["reporting"] and r.get("status") == "unhealthy"),
        "workers": [
            {"pid": r["pid"], "reporting": r["reporting"], "age_seconds": r["age_seconds"],
             "written_at": r["written_at"], "status": r.get("status"), "caches": r.get("caches", {})}
            for r in rows
        ],
    }  # fmt: skip


class ServiceReadiness:
    """``/readyz`` in multiprocess mode: this worker's full report plus ``workers`` (every
    worker's last heartbeat). 503 when this worker is not ready or a reporting one is unhealthy."""

    def __init__(self, inner: Callable[[dict[str, str]], tuple[Any, ...]], path: str) -> None:
        self._inner = inner
        self._path = path

    def __call__(self, headers: dict[str, str]) -> tuple[Any, ...]:
        status, ctype, body, *more = self._inner(headers)
        try:
            doc = json.loads(body)
        except ValueError:
            return (status, ctype, body, *more)
        summary = service_workers(self._path)
        doc["workers"] = summary
        if summary["unhealthy"] and status == 200:
            status = 503
            doc["status"] = "unhealthy"
            doc.setdefault("reasons", []).append(f"{summary['unhealthy']} worker(s) report an unhealthy cache")
        return (status, ctype, json.dumps(doc, default=str).encode(), *more)
