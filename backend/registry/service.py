"""Model registry rules: which version serves, and the promotion gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from backend.db.tables import ModelVersion
from backend.errors import ConflictError, NotFoundError
from backend.recsys.artifacts import load_artifact
from backend.recsys.errors import DataError
from backend.registry import repository as repo


def gate_allows(candidate: dict[str, Any], current: dict[str, Any] | None) -> tuple[bool, str]:
    """The promotion gate: a new model goes live only when its validation RMSE is no worse.

    Without an active model, or when the active one has no validation RMSE, it passes.
    """
    new = candidate.get("cv_rmse")
    if new is None:
        return False, "the new model has no validation RMSE (train with validate_k > 0)"
    old = None if current is None else current.get("cv_rmse")
    if old is None:
        return True, "no active model with a validation RMSE to compare with"
    if float(new) <= float(old):
        return True, f"validation RMSE {new:.4f} <= active {old:.4f}"
    return False, f"validation RMSE {new:.4f} > active {old:.4f}; kept the active model"


def activate(session: Session, model_id: int) -> ModelVersion:
    model = repo.get(session, model_id)
    if model is None:
        raise NotFoundError(f"model {model_id} not found; GET /api/v1/models lists the versions")
    if model.active:
        return model
    try:
        load_artifact(Path(model.path))  # verifies every file against the manifest
    except (DataError, OSError) as exc:
        raise ConflictError(
            f"model {model_id} ({model.version}) cannot serve traffic: {exc}"
        ) from None
    repo.set_active(session, model)
    return model


def to_dict(m: ModelVersion) -> dict[str, Any]:
    return {
        "id": m.id,
        "version": m.version,
        "algorithm": m.algorithm,
        "params": m.params,
        "metrics": m.metrics,
        "fingerprint": m.fingerprint,
        "n_users": m.n_users,
        "n_items": m.n_items,
        "n_ratings": m.n_ratings,
        "job_id": m.job_id,
        "active": m.active,
        "created_at": m.created_at,
        "activated_at": m.activated_at,
        "path": m.path,
    }
