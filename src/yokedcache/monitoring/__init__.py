"""The documented monitoring API, on top of the OpenTelemetry core.

Collectors that need optional packages are imported on first use, so ``from
yokedcache.monitoring import CacheMetrics`` works with the core install alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .alerts import AlertManager
from .metrics import CacheMetrics, NoOpCollector
from .notifiers import SMTPSettings

if TYPE_CHECKING:
    from .otlp import OTLPCollector
    from .prometheus import PrometheusCollector
    from .statsd import StatsDCollector

__all__ = [
    "AlertManager",
    "CacheMetrics",
    "NoOpCollector",
    "OTLPCollector",
    "PrometheusCollector",
    "SMTPSettings",
    "StatsDCollector",
]

_LAZY = {
    "PrometheusCollector": ".prometheus",
    "StatsDCollector": ".statsd",
    "OTLPCollector": ".otlp",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)
