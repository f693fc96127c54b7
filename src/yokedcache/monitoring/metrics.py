"""Placeholder replaced by the compatibility shim (issue 3)."""

from __future__ import annotations

from typing import Any


class CacheMetrics:
    meter_provider: Any = None
