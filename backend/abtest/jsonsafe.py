"""Numbers that may leave the core: finite floats or ``None``, never NaN or infinity.

JSON has no NaN or infinity, and a result that carries one breaks every consumer downstream.
Each statistic therefore reports an undefined value as ``None`` with a reason, and
:func:`finite_or_none` is the single gate every float passes on its way into a ``to_dict()``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def finite_or_none(value: float | None) -> float | None:
    """``float(value)`` when it is finite, else ``None`` (for NaN, ±inf and ``None``)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def assert_json_safe(value: Any, path: str = "$") -> None:
    """Raise ``AssertionError`` naming the first NaN/inf or non-JSON type found in ``value``.

    Accepts what ``json.dumps`` accepts without custom encoders: ``None``, ``bool``, ``int``,
    finite ``float``, ``str``, and lists/tuples/dicts of those with string keys.
    """
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AssertionError(f"{path} is {value!r}, which JSON cannot carry")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AssertionError(f"{path} has a non-string key {key!r}")
            assert_json_safe(item, f"{path}.{key}")
        return
    if isinstance(value, Sequence):
        for index, item in enumerate(value):
            assert_json_safe(item, f"{path}[{index}]")
        return
    raise AssertionError(f"{path} has type {type(value).__name__}, which is not JSON")
