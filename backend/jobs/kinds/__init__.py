"""The registry of job kinds: each declares its parameter schema and its runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from backend.jobs.context import JobContext

Runner = Callable[[JobContext, Any], dict[str, Any]]


@dataclass(frozen=True)
class JobKind:
    name: str
    params_model: type[BaseModel]
    run: Runner
    description: str


_REGISTRY: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    _REGISTRY[kind.name] = kind
    return kind


def get_kind(name: str) -> JobKind | None:
    _load_builtin()
    return _REGISTRY.get(name)


def all_kinds() -> dict[str, JobKind]:
    _load_builtin()
    return dict(sorted(_REGISTRY.items()))


def _load_builtin() -> None:
    # Imported lazily so that the registry module has no import cycle with the kinds.
    from backend.jobs.kinds import (  # noqa: F401
        abtest,
        echo,
        ingest,
        report,
        search,
        simulate,
        train,
        validate,
    )
