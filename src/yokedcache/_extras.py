"""Optional dependencies are imported only where they are used.

A user who never configures Redis or an exporter should not pay for (or need) those
packages; one who does gets an error that says which extra to install instead of a bare
``ModuleNotFoundError`` from deep inside the package.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: The distribution's name on the package index ("yokedcache" there is another project).
DISTRIBUTION = "yokedcache-otel"


def install_hint(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an ImportError naming the one extra that provides the feature.

    ``extra`` is the feature's extra even when the module comes with several (the OTel SDK is in
    every exporter's): a user asking for StatsD is told ``[statsd]``, once, not ``[sdk]`` first.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised by the missing-extra test
        raise ImportError(f"{module!r} is not installed; install it with: {install_hint(extra)}") from exc
