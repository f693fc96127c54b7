"""``YokedCacheInstrumentor``: the OpenTelemetry instrumentor for yokedcache.

yokedcache records spans and metrics itself, so there is nothing to monkey-patch: this
instrumentor flips the native instrumentation's switch (see :mod:`yokedcache.telemetry.switch`)
and hands it providers, hooks and the key-capture option. ``opentelemetry-instrument`` finds it
through the ``opentelemetry_instrumentor`` entry point named ``yokedcache``.

Usage::

    from yokedcache.instrumentor import YokedCacheInstrumentor

    YokedCacheInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    ...
    YokedCacheInstrumentor().uninstrument()  # back to the state before instrument()

Hooks: ``request_hook(span, operation, key)`` after a span starts and
``response_hook(span, operation, result)`` before a successful one ends; ``operation`` is the
cache operation (``"get"``, ``"set"``, ...), ``key`` the full cache key (``None`` for batch and
invalidation operations). Exceptions in hooks are logged, never raised into the cache call.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ._extras import require

require("opentelemetry.instrumentation.instrumentor", "instrumentor")

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # noqa: E402

from . import validation  # noqa: E402
from .telemetry import switch  # noqa: E402

__all__ = ["YokedCacheInstrumentor"]

#: Nothing else to instrument: the cache carries its own instrumentation.
_instruments: tuple[str, ...] = ()


class YokedCacheInstrumentor(BaseInstrumentor):
    """Switches yokedcache's native spans and metrics on (``instrument``) and off (``uninstrument``)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        request_hook = kwargs.get("request_hook")
        response_hook = kwargs.get("response_hook")
        for name, hook in (("request_hook", request_hook), ("response_hook", response_hook)):
            if hook is not None and not callable(hook):
                raise TypeError(f"{name}: expected a callable, got {type(hook).__name__}")
        capture_keys = kwargs.get("capture_keys", False)
        validation.boolean("capture_keys", capture_keys)
        self._before = switch.explicit()  # uninstrument() puts this back
        switch.configure(
            enabled=True,
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
            request_hook=request_hook,
            response_hook=response_hook,
            capture_keys=capture_keys,
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        # The state from before instrument(): native telemetry on the global providers (unless
        # the environment disabled it), not silence -- what uninstrumenting a contrib library gives.
        switch.restore(getattr(self, "_before", None))
