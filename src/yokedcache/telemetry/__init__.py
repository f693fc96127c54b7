"""OpenTelemetry instrumentation of cache operations (metrics and spans), API-only."""

from __future__ import annotations

from . import semconv
from .counters import CacheCounters
from .instrumentation import Instrumentation

__all__ = ["CacheCounters", "Instrumentation", "semconv"]
