"""What a job kind is, and the catalog of the kinds a process runs.

The platform knows kinds only through a ``Catalog``: each domain declares its kind (``KIND`` in its
job module), ``backend.catalog`` lists them all in one place, and each entry point (the API, the
Celery worker, the CLI) installs that list when it starts. The platform never imports a domain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
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


class Catalog:
    """The job kinds by name, in name order."""

    def __init__(self, kinds: Iterable[JobKind]) -> None:
        by_name: dict[str, JobKind] = {}
        for kind in kinds:
            if kind.name in by_name:
                raise ValueError(f"job kind {kind.name!r} is declared twice")
            by_name[kind.name] = kind
        self._kinds = dict(sorted(by_name.items()))

    def get(self, name: str) -> JobKind | None:
        return self._kinds.get(name)

    def names(self) -> list[str]:
        return list(self._kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[JobKind]:
        return iter(self._kinds.values())

    def extended(self, *kinds: JobKind) -> Catalog:
        """This catalog with more kinds (tests add kinds of their own this way)."""
        return Catalog([*self._kinds.values(), *kinds])


_installed: Catalog | None = None


def install(catalog: Catalog) -> Catalog | None:
    """Make ``catalog`` the kinds this process accepts and runs; returns the one it replaces."""
    global _installed
    previous, _installed = _installed, catalog
    return previous


def installed() -> Catalog:
    """The catalog installed by this process's entry point."""
    if _installed is None:
        raise RuntimeError(
            "no job kinds are installed in this process; call "
            "backend.jobs.kind.install(backend.catalog.CATALOG) at start-up"
        )
    return _installed
