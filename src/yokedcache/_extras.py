"""Optional dependencies are imported only where they are used.

A user who never configures Redis or an exporter should not pay for (or need) those
packages; one who does gets an error that says which extra to install instead of a bare
``ModuleNotFoundError`` from deep inside the package.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an ImportError naming the ``yokedcache[extra]`` to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised by the missing-extra test
        raise ImportError(f"{module!r} is not installed; install it with: pip install 'yokedcache[{extra}]'") from exc
