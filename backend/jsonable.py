"""The one way a result becomes JSON: ``to_jsonable(value)``.

Results are frozen dataclasses (the pure cores), pydantic models (the schemas) or plain
containers of them. ``to_jsonable`` walks them with pydantic's serializer, so a result's JSON
shape is its fields, and no class writes a ``to_dict`` of its own. NumPy scalars and arrays become
numbers and lists. NaN and infinity become ``None``: JSON has neither, and a stored or answered
result that carried one would break every consumer downstream.
"""

from __future__ import annotations

import math
from typing import Any

import pydantic_core


def _fallback(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} cannot be turned into JSON")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def to_jsonable(value: Any) -> Any:
    """``value`` as str, bool, int, finite float, None, lists and string-keyed dicts."""
    return _finite(pydantic_core.to_jsonable_python(value, fallback=_fallback))
