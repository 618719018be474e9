"""Model registry rules: which version serves, and the promotion gate."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from backend.db.tables import ModelVersion
from backend.errors import ConflictError, NotFoundError
from backend.recsys.artifacts import load_artifact
from backend.recsys.errors import DataError
from backend.registry import repository as repo

log = logging.getLogger(__name__)


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
    except Exception as exc:  # whatever reading the files raises, the artifact is unusable
        log.warning("model %s (%s) cannot be activated: %r", model_id, model.version, exc)
        raise ConflictError(
            f"model {model_id} ({model.version}) cannot serve traffic: "
            f"{load_failure(model.version, model.path, exc)}; activate another version or "
            "retrain it",
            detail={"model_id": model_id, "version": model.version},
        ) from None
    repo.set_active(session, model)
    return model


# An absolute POSIX path inside a message (not the tail of a URL or of a relative path).
_ABSOLUTE = re.compile(r"(?<![\w.:/~\-])/[^\s'\"`()\[\]{}<>,;|]*")


def load_failure(version: str, path: str, exc: BaseException) -> str:
    """Why the artifact of ``version`` cannot be loaded, without any server path.

    The artifact's own checks (``DataError``: a missing file, a sha256 that differs from the
    manifest, arrays of the wrong shape) say which file; anything else raised while reading the
    files (an unreadable or undecodable .npz) is reported by its kind only. The full exception
    belongs in the server log.
    """
    if isinstance(exc, DataError):
        reason = str(exc).replace(str(Path(path)), f"artifact {artifact_name(path)}")
        reason = _ABSOLUTE.sub("…", reason)
    elif isinstance(exc, FileNotFoundError):
        reason = "a file of the artifact is missing"
    elif isinstance(exc, OSError):
        reason = "a file of the artifact cannot be read"
    else:
        reason = f"a file of the artifact cannot be decoded ({type(exc).__name__})"
    return (
        f"model version {version} cannot be loaded: its artifact is missing or corrupt ({reason})"
    )


def artifact_name(path: str) -> str:
    """The artifact's directory relative to the models dir (``save_artifact`` writes it as
    ``models_dir/version``): what a response may show instead of the server's absolute path."""
    return Path(path).name


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
        "path": artifact_name(m.path),  # relative to the models dir
    }
