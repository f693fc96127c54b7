"""Redis glob patterns (``KEYS``/``SCAN MATCH`` syntax) for both backends.

The facade escapes the key prefix and the memory backend must match exactly what Redis would,
so a pattern means the same thing whichever backend serves it.
"""

from __future__ import annotations

import re
from functools import lru_cache

_SPECIAL = frozenset("*?[]\\")


def escape_glob(text: str) -> str:
    """Escape ``text`` so that it matches itself literally inside a glob pattern."""
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in text)


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """Translate a Redis glob into an anchored regular expression."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            j = i + 1
            negate = j < n and pattern[j] == "^"
            if negate:
                j += 1
            items: list[str] = []
            while j < n and pattern[j] != "]":
                if pattern[j] == "\\" and j + 1 < n:
                    items.append(re.escape(pattern[j + 1]))
                    j += 2
                elif j + 2 < n and pattern[j + 1] == "-" and pattern[j + 2] != "]":
                    lo, hi = sorted((pattern[j], pattern[j + 2]))
                    items.append(f"{re.escape(lo)}-{re.escape(hi)}")
                    j += 3
                else:
                    items.append(re.escape(pattern[j]))
                    j += 1
            body = "".join(items)
            out.append(f"[{'^' if negate else ''}{body}]" if body else ("[^\\s\\S]" if not negate else "."))
            i = j
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)
