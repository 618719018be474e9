"""Experiment definitions: create one (validated), start it, stop it, read it, and what serving
needs of the running one.

An experiment is ``draft`` when created, ``running`` once started and ``stopped`` for good once
stopped (restarting would mix two periods of traffic in one analysis: define a new experiment
instead). At most one experiment runs at a time, so every request has one assignment; a partial
unique index on the table holds that rule even when two starts race.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db.tables import ExperimentDefinition
from backend.errors import ConflictError, InvalidInputError, NotFoundError
from backend.experiments import repository
from backend.experiments.schemas import ExperimentIn, ExperimentOut, VariantOut
from backend.registry import repository as models

#: Names that routes under /api/v1/experiments/ already use for something else.
RESERVED = frozenset({"sample-size"})


@dataclass(frozen=True)
class ServedVariant:
    """One arm as serving holds it: a model version, or a strategy of the active model."""

    name: str
    weight: float
    model_version: str | None
    strategy: str | None


@dataclass(frozen=True)
class RunningExperiment:
    """The running experiment as serving holds it in memory."""

    name: str
    variants: tuple[ServedVariant, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(v.weight for v in self.variants)


def to_out(row: ExperimentDefinition) -> ExperimentOut:
    return ExperimentOut(
        name=row.name,
        description=row.description,
        status=row.status,  # type: ignore[arg-type]  # the column only ever holds a Status
        variants=[VariantOut.model_validate(v) for v in row.variants],
        created_at=row.created_at,
        started_at=row.started_at,
        stopped_at=row.stopped_at,
    )


def _get(session: Session, name: str) -> ExperimentDefinition:
    row = repository.definition(session, name)
    if row is None:
        raise NotFoundError(
            f"experiment {name!r} is not defined; POST /api/v1/experiments defines one"
        )
    return row


def create(session: Session, body: ExperimentIn) -> ExperimentOut:
    """Define an experiment (status ``draft``): at least two variants with distinct names,
    weights above 0, and every ``model_version`` registered."""
    if body.name in RESERVED:
        raise InvalidInputError(f"{body.name!r} is a reserved name; choose another")
    if len(body.variants) < 2:
        raise InvalidInputError(
            f"an experiment needs at least 2 variants to compare, got {len(body.variants)}"
        )
    names = [v.name for v in body.variants]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidInputError(f"variant names must be distinct; repeated: {repeated}")
    unknown = sorted(
        {
            v.model_version
            for v in body.variants
            if v.model_version is not None and models.by_version(session, v.model_version) is None
        }
    )
    if unknown:
        raise InvalidInputError(
            f"model versions not in the registry: {unknown}; GET /api/v1/models lists them"
        )
    if repository.definition(session, body.name) is not None:
        raise ConflictError(f"experiment {body.name!r} already exists; choose another name")
    variants = [v.model_dump() for v in body.variants]
    # A failed flush leaves the session to roll back, which the request's owner does on error.
    try:
        row = repository.add_definition(
            session, name=body.name, description=body.description, variants=variants
        )
    except IntegrityError:  # created by a concurrent request since the check above
        raise ConflictError(
            f"experiment {body.name!r} already exists; choose another name"
        ) from None
    return to_out(row)


def get(session: Session, name: str) -> ExperimentOut:
    """The definition of experiment ``name``."""
    return to_out(_get(session, name))


def start(session: Session, name: str) -> ExperimentOut:
    """Start a draft experiment: serving assigns users to its variants from its next refresh.
    ``ConflictError`` when it is not a draft or another experiment is running."""
    row = _get(session, name)
    if row.status != "draft":
        raise ConflictError(
            f"experiment {name!r} is {row.status}; only a draft can start (a stopped "
            "experiment stays stopped: define a new one)"
        )
    others = [r.name for r in repository.running(session)]
    if others:
        raise ConflictError(
            f"experiment {others[0]!r} is running; stop it first "
            f"(POST /api/v1/experiments/{others[0]}/stop): one experiment runs at a time",
            detail={"running": others[0]},
        )
    try:
        row.status = "running"
        row.started_at = datetime.now(UTC)
        session.flush()
    except IntegrityError:  # another start won the race
        raise ConflictError(
            "another experiment started meanwhile; one experiment runs at a time"
        ) from None
    return to_out(row)


def stop(session: Session, name: str) -> ExperimentOut:
    """Stop a running experiment: serving goes back to the active model for everyone."""
    row = _get(session, name)
    if row.status != "running":
        raise ConflictError(f"experiment {name!r} is {row.status}; only a running one can stop")
    row.status = "stopped"
    row.stopped_at = datetime.now(UTC)
    session.flush()
    return to_out(row)


def running(session: Session) -> list[RunningExperiment]:
    """The running experiment (a list of at most one), as serving holds it."""
    return [
        RunningExperiment(
            name=row.name,
            variants=tuple(
                ServedVariant(
                    name=v["name"],
                    weight=float(v["weight"]),
                    model_version=v.get("model_version"),
                    strategy=v.get("strategy"),
                )
                for v in row.variants
            ),
        )
        for row in repository.running(session)
    ]


def by_name(session: Session) -> dict[str, ExperimentOut]:
    """Every definition, by name (for the experiments listing)."""
    return {row.name: to_out(row) for row in repository.definitions(session)}
