"""The documented monitoring API, on top of the OpenTelemetry core.

Only what the documentation teaches lives here -- ``CacheMetrics`` and its collectors -- or
is re-exported from here (``AlertManager`` and ``SMTPSettings`` from ``yokedcache.alerting``),
so that those import paths keep working while readers and exporters live in
``yokedcache.exporters`` and the HTTP server in ``yokedcache.server``. Collectors that need
optional packages are imported on first use, so ``from yokedcache.monitoring import
CacheMetrics`` works with the core install alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..alerting import AlertManager, SMTPSettings
from .metrics import CacheMetrics, NoOpCollector

if TYPE_CHECKING:
    from .otlp import OTLPCollector
    from .prometheus import PrometheusCollector, child_exit, make_asgi_app, make_wsgi_app, mark_process_dead
    from .statsd import StatsDCollector

__all__ = [
    "AlertManager",
    "CacheMetrics",
    "NoOpCollector",
    "OTLPCollector",
    "PrometheusCollector",
    "SMTPSettings",
    "StatsDCollector",
    "child_exit",
    "make_asgi_app",
    "make_wsgi_app",
    "mark_process_dead",
]

_LAZY = {
    "PrometheusCollector": ".prometheus",
    "StatsDCollector": ".statsd",
    "OTLPCollector": ".otlp",
    # multiprocess mode and the mountable endpoints (docs/multiprocess.md)
    "make_asgi_app": ".prometheus",
    "make_wsgi_app": ".prometheus",
    "child_exit": ".prometheus",
    "mark_process_dead": ".prometheus",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)
