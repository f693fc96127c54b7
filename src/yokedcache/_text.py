"""How an error message shows a bad value: :func:`quoted`, cut to its first 100 characters.

A value a user passed can be anything, a 10 MB string included; echoed whole, it floods logs
and crash reporters. Its own module, below both :mod:`.validation` and :mod:`._urls` (which
``validation`` imports), so the one rule serves both; ``validation.quoted`` is the name to use.
"""

from __future__ import annotations

__all__ = ["QUOTED_CHARACTERS", "quoted"]

#: Characters of a bad value an error message quotes.
QUOTED_CHARACTERS = 100


def quoted(value: object) -> str:
    """``repr(value)`` for an error message, cut to its first :data:`QUOTED_CHARACTERS` characters.

    A long ``str`` keeps a proper quoted prefix and says how long it was; a long container is
    described, never repr'd whole; any other value's repr is cut as text.
    """
    if isinstance(value, str):
        if len(value) <= QUOTED_CHARACTERS:
            return repr(value)
        return f"{value[:QUOTED_CHARACTERS]!r}... ({len(value)} characters)"
    if isinstance(value, (list, tuple, dict, set, frozenset, bytes, bytearray)) and len(value) > QUOTED_CHARACTERS:
        return f"{type(value).__name__} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= QUOTED_CHARACTERS else f"{text[:QUOTED_CHARACTERS]}..."
