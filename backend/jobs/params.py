"""What every kind's params share: a strict base model and the checks that need ``Settings``.

Params are validated twice with the same code: when the job is submitted (a 422 naming the
field) and again by the worker before it runs (a file may have vanished, a setting changed).
Both pass the settings in pydantic's validation context,
``model.model_validate(params, context={"settings": settings})``; the checks that need them
(files confined to the allowed roots, size ceilings, services a kind needs) run only then, so
that building a model by hand or rendering its JSON schema needs no settings.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo
from pydantic_core import PydanticCustomError

from backend.config import Settings
from backend.paths import PathKind, PathNotAllowedError, confine

# A hyperparameter's value: JSON scalars only (a finite number, a flag, a word, or null).
HyperValue = bool | int | float | str | None


class JobParams(BaseModel):
    """Base of every kind's params: unknown fields and NaN or infinite numbers are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def context_settings(info: ValidationInfo) -> Settings | None:
    """The ``Settings`` passed in the validation context, if any."""
    context = info.context
    if isinstance(context, dict):
        settings = context.get("settings")
        if isinstance(settings, Settings):
            return settings
    return None


def custom_error(kind: str, message: str) -> PydanticCustomError:
    # The message goes in as context so that braces in it (a path) are not read as a template.
    return PydanticCustomError(kind, "{message}", {"message": message})


def path_error(exc: PathNotAllowedError) -> PydanticCustomError:
    return custom_error(f"path_{exc.reason}", exc.message)


def confined(value: str, info: ValidationInfo, *, kind: PathKind, must_exist: bool = True) -> str:
    """Check a path field against the allowed roots (with settings in the context).

    The value stays as the caller wrote it: what the job records is what was asked, and the
    worker resolves it again when it runs.
    """
    settings = context_settings(info)
    if settings is not None:
        try:
            confine(
                value, settings, field=info.field_name or "path", must_exist=must_exist, kind=kind
            )
        except PathNotAllowedError as exc:
            raise path_error(exc) from None
    return value


def at_most(value: float, info: ValidationInfo, setting: str) -> None:
    """Refuse ``value`` above the ceiling ``settings.<setting>`` (RECFLOW_<SETTING>)."""
    settings = context_settings(info)
    if settings is None:
        return
    limit = getattr(settings, setting)
    if value > limit:
        raise custom_error(
            "ceiling_exceeded",
            f"{info.field_name} must be at most {limit:g} (RECFLOW_{setting.upper()}); "
            f"got {value:g}",
        )


def ceiling(setting: str) -> AfterValidator:
    """A field validator refusing values above ``settings.<setting>`` (see :func:`at_most`)."""

    def check(value: float, info: ValidationInfo) -> float:
        at_most(value, info, setting)
        return value

    return AfterValidator(check)


# Fields several kinds share, with their ceilings.
Folds = Annotated[
    int, Field(ge=2, description="k-fold CV folds, at most RECFLOW_MAX_CV_FOLDS (20)"),
    ceiling("max_cv_folds"),
]  # fmt: skip
NJobs = Annotated[
    int, Field(ge=1, description="folds run in parallel, at most RECFLOW_MAX_N_JOBS"),
    ceiling("max_n_jobs"),
]  # fmt: skip


def non_finite(value: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """The location of every NaN or infinite float in a JSON-like value."""
    if isinstance(value, float) and not math.isfinite(value):
        yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from non_finite(item, (*loc, str(key)))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from non_finite(item, (*loc, i))
