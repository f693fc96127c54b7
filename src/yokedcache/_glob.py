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


class Glob:
    """A compiled Redis glob. Redis matches bytes, so this matches the key's UTF-8 bytes: ``?`` is
    one byte, and a bracket set or range compares single bytes (``é`` is two)."""

    __slots__ = ("_regex",)

    def __init__(self, regex: re.Pattern[bytes]) -> None:
        self._regex = regex

    def match(self, key: str) -> bool:
        return self._regex.match(key.encode("utf-8", "surrogatepass")) is not None


def _byte(value: int) -> bytes:
    return re.escape(bytes((value,)))


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> Glob:
    """Translate a Redis glob into an anchored regular expression over UTF-8 bytes."""
    raw = pattern.encode("utf-8", "surrogatepass")
    out: list[bytes] = []
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch == 0x2A:  # *
            out.append(b".*")
        elif ch == 0x3F:  # ?
            out.append(b".")
        elif ch == 0x5C and i + 1 < n:  # \x: x literally
            i += 1
            out.append(_byte(raw[i]))
        elif ch == 0x5B:  # [
            j = i + 1
            negate = j < n and raw[j] == 0x5E  # ^
            if negate:
                j += 1
            items: list[bytes] = []
            while j < n and raw[j] != 0x5D:  # ]
                if raw[j] == 0x5C and j + 1 < n:
                    items.append(_byte(raw[j + 1]))
                    j += 2
                elif j + 2 < n and raw[j + 1] == 0x2D and raw[j + 2] != 0x5D:  # a-z
                    lo, hi = sorted((raw[j], raw[j + 2]))
                    items.append(_byte(lo) + b"-" + _byte(hi))
                    j += 3
                else:
                    items.append(_byte(raw[j]))
                    j += 1
            body = b"".join(items)
            out.append(b"[" + (b"^" if negate else b"") + body + b"]" if body else (b"." if negate else b"[^\\s\\S]"))
            i = j
        else:
            out.append(_byte(ch))
        i += 1
    return Glob(re.compile(b"".join(out) + rb"\Z", re.DOTALL))
