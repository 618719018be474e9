"""The active model held in memory by each API process, reloaded when another is activated.

Each API worker process polls the ``models`` table for the active version (one indexed query
every ``serving_refresh_s``) in a background thread. A new version is loaded next to the old one
and swapped in with a single reference assignment, so requests never wait for a load and never
see a half-loaded model: reloads have no downtime, and every process notices the change.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from backend.db.session import session_scope
from backend.errors import ConflictError, NotFoundError
from backend.recsys.artifacts import ITEMS_FILE, load_artifact
from backend.recsys.indexes import CategoryIndex, IdIndex
from backend.recsys.model import FactorModel
from backend.recsys.similar import SimilarityIndex, similarity_index
from backend.registry import repository as repo
from backend.registry.service import load_failure

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ServingModel:
    model_id: int
    version: str
    model: FactorModel
    ids: IdIndex
    titles: npt.NDArray[np.object_] | None
    categories: CategoryIndex | None
    loaded_at: datetime
    _similar: list[SimilarityIndex] = field(default_factory=list)

    def similarity(self) -> SimilarityIndex:
        if not self._similar:
            self._similar.append(similarity_index(self.model))
        return self._similar[0]


def load_serving_model(model_id: int, version: str, path: Path) -> ServingModel:
    """The artifact at ``path``, verified, with its id index, titles and category index."""
    loaded = load_artifact(path)
    model = loaded.model
    ids = IdIndex.from_model(model)
    titles = None
    categories = None
    items = loaded.items
    if items is None and (path / ITEMS_FILE).is_file():
        # Item metadata the manifest does not list is not served: nothing vouches for it.
        log.warning(
            "model %s: %s is not listed in its manifest and is ignored; retrain with items to "
            "serve titles and categories",
            version,
            ITEMS_FILE,
        )
    if items is not None:
        title_of = {str(r["item"]): r.get("title") for r in items}
        titles = np.array([title_of.get(i) for i in model.item_ids.tolist()], dtype=object)
        categories = CategoryIndex.from_metadata(
            model, {str(r["item"]): r.get("genres") or [] for r in items}
        )
    return ServingModel(
        model_id=model_id,
        version=version,
        model=model,
        ids=ids,
        titles=titles,
        categories=categories,
        loaded_at=datetime.now(UTC),
    )


class ModelHolder:
    """Holds the current ServingModel; ``refresh()`` swaps in a newly activated version."""

    def __init__(self, database_url: str, refresh_s: float) -> None:
        self._url = database_url
        self._refresh_s = refresh_s
        self._current: ServingModel | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        # The active version when it cannot be loaded: (model id, version, what to do). Serving
        # goes on with the previous version, if any; readiness reports it.
        self.failed: tuple[int, str, str] | None = None
        self._cache: dict[str, ServingModel] = {}

    @property
    def current(self) -> ServingModel | None:
        return self._current

    def refresh(self) -> bool:
        """Load the active version if it changed; returns True when a new model was swapped in."""
        with self._lock:
            try:
                with session_scope(self._url) as s:
                    pointer = repo.active_pointer(s)
            except Exception as exc:  # the database may be briefly away; keep serving
                self.last_error = f"cannot read the active model: {exc}"
                return False
            if pointer is None:
                self._current = None
                self.failed = None
                return False
            model_id, version, path = pointer
            cur = self._current
            if cur is not None and cur.model_id == model_id:
                return False
            t0 = time.perf_counter()
            try:
                new = load_serving_model(model_id, version, Path(path))
            except Exception as exc:
                message = (
                    f"{load_failure(version, path, exc)}; activate another version "
                    "(POST /api/v1/models/{id}/activate) or retrain it"
                )
                if self.failed is None or self.failed[0] != model_id:  # log once per version
                    log.error(
                        "cannot load the active model %s: %r; still serving %s",
                        version,
                        exc,
                        cur and cur.version,
                    )
                self.failed = (model_id, version, message)
                self.last_error = message
                return False
            self._current = new
            self.failed = None
            self.last_error = None
            log.info("serving model %s (loaded in %.3fs)", version, time.perf_counter() - t0)
            return True

    def by_version(self, version: str) -> ServingModel:
        """Any registered version (for side-by-side scenarios), cached per process."""
        cur = self._current
        if cur is not None and cur.version == version:
            return cur
        hit = self._cache.get(version)
        if hit is not None:
            return hit
        with session_scope(self._url) as s:
            row = repo.by_version(s, version)
            if row is None:
                raise NotFoundError(
                    f"model version {version!r} not found; GET /api/v1/models lists the versions"
                )
            model_id, path = row.id, row.path
        try:
            sm = load_serving_model(model_id, version, Path(path))
        except Exception as exc:  # the artifact's files, not the request, are at fault
            log.warning("cannot load model %s for a comparison: %r", version, exc)
            raise ConflictError(
                f"{load_failure(version, path, exc)}; compare other versions or retrain it",
                detail={"model_id": model_id, "version": version},
            ) from None
        if len(self._cache) >= 4:
            self._cache.pop(next(iter(self._cache)))
        self._cache[version] = sm
        return sm

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="model-refresh", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._refresh_s):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
