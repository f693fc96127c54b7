"""Value serialisers: how Python values become the bytes a backend stores.

JSON is the default because a value written by another process must never be able to run
code when read back; pickle can, so it is available only when chosen explicitly.
"""

from __future__ import annotations

import json
import pickle
from typing import Any, Protocol, runtime_checkable

from .errors import SerializationError

__all__ = ["JSONSerializer", "PickleSerializer", "Serializer", "resolve_serializer"]


@runtime_checkable
class Serializer(Protocol):
    """Turns values into bytes and back. Errors must be raised, never swallowed."""

    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JSONSerializer:
    """Compact JSON. Rejects NaN/inf (not JSON), sets, bytes, and other non-JSON values."""

    name = "json"

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        decoder = json.JSONDecoder()
        self._decode = decoder.decode
        # The C scanner alone parses one JSON value at a position: about 6x cheaper than
        # json.loads(bytes) (which sniffs the encoding and matches whitespace) on small values.
        self._scan = decoder.scan_once

    def dumps(self, value: Any) -> bytes:
        try:
            return self._encoder.encode(value).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(f"value of type {type(value).__name__} cannot be stored as JSON: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        try:
            text = data.decode("utf-8")
            try:
                value, end = self._scan(text, 0)
            except StopIteration:  # leading whitespace or not JSON: let the full decoder decide
                end = -1
            if end != len(text):  # trailing data (or whitespace) after the value
                value = self._decode(text)
            return value
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise SerializationError(f"stored value is not valid JSON: {exc}") from exc


class PickleSerializer:
    """Pickle: any picklable value, but reading executes code chosen by whoever wrote the bytes.

    Use it only when every writer of the cache is trusted.
    """

    name = "pickle"

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self._protocol = protocol

    def dumps(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=self._protocol)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
            raise SerializationError(f"value of type {type(value).__name__} cannot be pickled: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise SerializationError(f"stored value cannot be unpickled: {exc}") from exc


def resolve_serializer(value: str | Serializer) -> Serializer:
    """Accept a serializer name or an object implementing :class:`Serializer`."""
    if isinstance(value, str):
        if value == "json":
            return JSONSerializer()
        if value == "pickle":
            return PickleSerializer()
        raise ValueError(f"serializer: unknown name {value!r}; expected 'json', 'pickle' or a Serializer")
    if isinstance(value, Serializer):
        return value
    raise TypeError(f"serializer: expected 'json', 'pickle' or an object with dumps/loads, got {type(value).__name__}")
