"""A JSON response rendered by orjson, for the serving hot path (no model validation pass)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response


class FastJSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
