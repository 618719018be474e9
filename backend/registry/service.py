"""Model registry rules: registering a version, which version serves, and the promotion gate."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session

from backend.db.tables import ModelVersion
from backend.errors import ConflictError, NotFoundError
from backend.recsys.artifacts import load_artifact
from backend.recsys.errors import DataError
from backend.registry import repository as repo
from backend.registry.schemas import MetricPage, MetricRecordOut, ModelOut, ModelPage, artifact_name

log = logging.getLogger(__name__)

#: When a newly registered version starts serving: never, always, or when the gate allows it.
Activation = Literal["never", "always", "if_better"]


#: What the gate compares: k-fold RMSE (lower is better) or hold-out NDCG@k (higher is better).
GateMetric = Literal["rmse", "ndcg"]


def gate_allows(
    candidate: dict[str, Any], current: dict[str, Any] | None, metric: GateMetric = "rmse"
) -> tuple[bool, str]:
    """The promotion gate: a new model goes live only when its validation score is no worse.

    ``metric="rmse"`` compares the k-fold RMSE (``cv_rmse``, from ``validate_k``): lower is
    better, so the new model passes when its RMSE is at most the active one's. RMSE says nothing
    about a model of implicit feedback, which predicts no ratings; ``metric="ndcg"`` compares
    NDCG@k on a temporal hold-out (``val_ndcg`` at ``val_k``, from ``validate_ranking``): higher
    is better, so the new model passes when its NDCG is at least the active one's. NDCGs at
    different k are not comparable; an active model without the metric (or at another k) is
    no bar, and the new model passes.
    """
    if metric == "ndcg":
        return _ndcg_gate(candidate, current)
    new = candidate.get("cv_rmse")
    if new is None:
        return False, "the new model has no validation RMSE (train with validate_k > 0)"
    old = None if current is None else current.get("cv_rmse")
    if old is None:
        return True, "no active model with a validation RMSE to compare with"
    if float(new) <= float(old):
        return True, f"validation RMSE {new:.4f} <= active {old:.4f}"
    return False, f"validation RMSE {new:.4f} > active {old:.4f}; kept the active model"


def _ndcg_gate(candidate: dict[str, Any], current: dict[str, Any] | None) -> tuple[bool, str]:
    new, k = candidate.get("val_ndcg"), candidate.get("val_k")
    if new is None:
        return False, "the new model has no validation NDCG (train with validate_ranking)"
    old = None if current is None else current.get("val_ndcg")
    if old is None or current is None or current.get("val_k") != k:
        return True, f"no active model with a validation NDCG@{k} to compare with"
    if float(new) >= float(old):
        return True, f"validation NDCG@{k} {new:.4f} >= active {old:.4f}"
    return False, f"validation NDCG@{k} {new:.4f} < active {old:.4f}; kept the active model"


def activate(session: Session, model_id: int) -> ModelVersion:
    """Make ``model_id`` the only active version, once its artifact checks against its manifest.

    Raises ``NotFoundError`` for an unknown id and ``ConflictError`` when the artifact cannot be
    loaded (the message names no server path).
    """
    model = repo.get(session, model_id)
    if model is None:
        raise NotFoundError(f"model {model_id} not found; GET /api/v1/models lists the versions")
    _activate(session, model)
    return model


def verify_artifact(version: str, path: str, model_id: int | None = None) -> None:
    """Check that the artifact at ``path`` loads and matches its manifest.

    Raises ``ConflictError`` naming the version (and the model id when there is one), never the
    server path. Reading and hashing every file takes a while for a large model, so a caller
    that holds a transaction calls this before opening it.
    """
    try:
        load_artifact(Path(path))  # verifies every file against the manifest
    except Exception as exc:  # whatever reading the files raises, the artifact is unusable
        log.warning("model %s (%s) cannot be activated: %r", model_id, version, exc)
        name = version if model_id is None else f"model {model_id} ({version})"
        raise ConflictError(
            f"{name} cannot serve traffic: {load_failure(version, path, exc)}; activate "
            "another version or retrain it",
            detail={"model_id": model_id, "version": version},
        ) from None


def _activate(session: Session, model: ModelVersion, *, verified: bool = False) -> None:
    if model.active:
        return
    if not verified:
        verify_artifact(model.version, model.path, model.id)
    repo.set_active(session, model)


@dataclass(frozen=True)
class Registered:
    """A newly registered version, and whether (and why) it now serves."""

    model_id: int
    activated: bool
    reason: str


def register(
    session: Session,
    *,
    version: str,
    algorithm: str,
    params: dict[str, Any],
    path: str,
    fingerprint: str,
    metrics: dict[str, Any],
    n_users: int,
    n_items: int,
    n_ratings: int,
    job_id: int,
    metric_rows: list[tuple[str, int | None, str, float | None]],
    activation: Activation,
    verified: bool = False,
    gate_metric: GateMetric = "rmse",
) -> Registered:
    """Add a version trained by ``job_id`` with its metric rows, then activate it as
    ``activation`` says (``if_better``: the promotion gate on ``gate_metric`` against the active
    version).

    Activation goes through ``activate``'s artifact check, so a version whose files do not match
    their manifest never serves (``ConflictError``); ``verified=True`` says the caller ran
    ``verify_artifact`` on ``path`` already (before its transaction, so that the check does not
    hold the database's write lock). The caller owns the transaction.
    """
    row = repo.add(
        session,
        version=version,
        algorithm=algorithm,
        params=params,
        path=path,
        fingerprint=fingerprint,
        metrics=metrics,
        n_users=n_users,
        n_items=n_items,
        n_ratings=n_ratings,
        job_id=job_id,
    )
    repo.add_metrics(session, job_id, row.id, metric_rows)
    if activation == "always":
        allowed, reason = True, "activate=always"
    elif activation == "never":
        allowed, reason = False, "activate=never"
    else:
        current = repo.active(session)
        allowed, reason = gate_allows(
            metrics, None if current is None else current.metrics, gate_metric
        )
    if allowed:
        _activate(session, row, verified=verified)
    return Registered(model_id=row.id, activated=allowed, reason=reason)


def list_models(session: Session, limit: int) -> ModelPage:
    """The newest ``limit`` versions, newest first."""
    return ModelPage(items=[model_out(m) for m in repo.page(session, limit)])


def get_model(session: Session, model_id: int) -> ModelOut:
    model = repo.get(session, model_id)
    if model is None:
        raise NotFoundError(f"model {model_id} not found")
    return model_out(model)


def model_out(model: ModelVersion) -> ModelOut:
    """What a response shows of a version: its row, with the artifact named relative to the
    models dir."""
    return ModelOut.model_validate(model, from_attributes=True)


def metric_records(
    session: Session,
    *,
    job_id: int | None,
    model_id: int | None,
    name: str | None,
    limit: int,
) -> MetricPage:
    rows = repo.metrics(session, job_id=job_id, model_id=model_id, name=name, limit=limit)
    return MetricPage(items=[MetricRecordOut.model_validate(r, from_attributes=True) for r in rows])


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
