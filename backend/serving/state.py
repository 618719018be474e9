"""What each API process serves, held in memory and refreshed in the background: the active
model, the running experiment with the model of each of its variants, and the items catalogue.

Each API worker process polls SQL every ``serving_refresh_s`` in a background thread: the active
version (one indexed query), the running experiment (one) and the catalogue's version (one; the
items are read again only when it changed). A new model is loaded next to the old one, each
variant's version once, and everything is swapped in with a single reference assignment (a
``ServingView``), so requests never wait for a load, never see a half-loaded state, and cost no
database query.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from backend.catalogue import service as catalogue
from backend.catalogue.service import CatalogueSnapshot
from backend.db.session import session_scope
from backend.errors import ConflictError, NotFoundError
from backend.experiments import definitions
from backend.experiments.definitions import RunningExperiment
from backend.registry import repository as repo
from backend.registry.service import load_failure
from backend.serving.model import ServingModel, load_serving_model
from backend.serving.overlay import overlay

__all__ = ["LiveExperiment", "ModelHolder", "ServingModel", "ServingView", "load_serving_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveExperiment:
    """The running experiment with what each variant serves: its model (catalogue applied), or
    None for the ``popular`` strategy (the active model's popularity list)."""

    experiment: RunningExperiment
    models: dict[str, ServingModel | None]


@dataclass(frozen=True)
class ServingView:
    """Everything a request reads, published as one object."""

    active: ServingModel | None = None
    experiment: LiveExperiment | None = None
    catalogue: CatalogueSnapshot | None = None


@dataclass
class _Read:
    pointer: tuple[int, str, str] | None
    running: list[RunningExperiment] | None  # None: could not be read
    catalogue: CatalogueSnapshot | None  # None: unchanged, or could not be read
    paths: dict[str, tuple[int, str]] = field(default_factory=dict)


class ModelHolder:
    """Holds the current ``ServingView``; ``refresh()`` swaps in what changed in SQL."""

    def __init__(self, database_url: str, refresh_s: float) -> None:
        self._url = database_url
        self._refresh_s = refresh_s
        self._view = ServingView()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        # The active version when it cannot be loaded: (model id, version, what to do). Serving
        # goes on with the previous version, if any; readiness reports it.
        self.failed: tuple[int, str, str] | None = None
        # Why the running experiment and the catalogue could not be read at the last refresh.
        self.read_error: str | None = None
        # Why the running experiment is not served (a variant's model cannot load), if it is not.
        self.experiment_error: str | None = None
        self._cache: dict[str, ServingModel] = {}
        # Loaded models before the catalogue is applied: the active one and each variant's.
        self._base: ServingModel | None = None
        self._variants: dict[str, ServingModel] = {}
        self._catalogue: CatalogueSnapshot | None = None

    @property
    def view(self) -> ServingView:
        return self._view

    @property
    def current(self) -> ServingModel | None:
        return self._view.active

    @property
    def experiment(self) -> LiveExperiment | None:
        return self._view.experiment

    def _read(self) -> _Read:
        with session_scope(self._url) as s:
            pointer = repo.active_pointer(s)
        # Read apart, so that a fault there (e.g. a database not yet migrated to the tables)
        # never stops the active model from being served.
        known = None if self._catalogue is None else self._catalogue.version
        try:
            with session_scope(self._url) as s:
                running = definitions.running(s)
                paths: dict[str, tuple[int, str]] = {}
                for variant in (v for e in running for v in e.variants):
                    version = variant.model_version
                    if version is not None and version not in self._variants:
                        row = repo.by_version(s, version)
                        if row is not None:
                            paths[version] = (row.id, row.path)
                snapshot = catalogue.snapshot(s, known)
        except Exception as exc:
            message = f"cannot read the running experiment or the items catalogue: {exc}"
            if self.read_error != message:  # log once per cause
                log.error("%s; serving goes on with what it holds", message)
            self.read_error = message
            return _Read(pointer, None, None)
        self.read_error = None
        return _Read(pointer, running, snapshot, paths)

    def refresh(self) -> bool:
        """Swap in what changed; returns True when a new active model was swapped in."""
        with self._lock:
            try:
                read = self._read()
            except Exception as exc:  # the database may be briefly away; keep serving
                self.last_error = f"cannot read the active model: {exc}"
                return False
            swapped = self._refresh_active(read.pointer)
            catalogue_changed = read.catalogue is not None
            if read.catalogue is not None:
                self._catalogue = read.catalogue
            cur = self._view
            active = cur.active
            if swapped or catalogue_changed or (self._base is None) != (active is None):
                active = None if self._base is None else overlay(self._base, self._catalogue)
            if read.running is None:  # unknown this time: keep what is served
                self._view = ServingView(active, cur.experiment, self._catalogue)
                return swapped
            experiment = self._refresh_experiment(read)
            live = None
            if experiment is not None:
                old = cur.experiment
                reuse = (
                    old is not None
                    and old.experiment == experiment
                    and not catalogue_changed
                    and not swapped
                )
                live = old if reuse else self._live(experiment, active)
            self._view = ServingView(active=active, experiment=live, catalogue=self._catalogue)
            return swapped

    def _refresh_active(self, pointer: tuple[int, str, str] | None) -> bool:
        if pointer is None:
            self._base = None
            self.failed = None
            return False
        model_id, version, path = pointer
        cur = self._base
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
        self._base = new
        self.failed = None
        self.last_error = None
        log.info("serving model %s (loaded in %.3fs)", version, time.perf_counter() - t0)
        return True

    def _refresh_experiment(self, read: _Read) -> RunningExperiment | None:
        """The running experiment when every variant's model is loaded (each version once),
        else None: its users get the active model, and ``experiment_error`` says why."""
        if not read.running:  # None is handled by the caller
            self._variants.clear()
            self.experiment_error = None
            return None
        experiment = read.running[0]
        wanted = {v.model_version for v in experiment.variants if v.model_version is not None}
        for version in set(self._variants) - wanted:
            del self._variants[version]
        for version in sorted(wanted - set(self._variants)):
            if self._base is not None and self._base.version == version:
                self._variants[version] = self._base
                continue
            found = read.paths.get(version)
            try:
                if found is None:
                    raise FileNotFoundError(f"model version {version} is not in the registry")
                self._variants[version] = load_serving_model(found[0], version, Path(found[1]))
            except Exception as exc:
                message = (
                    f"experiment {experiment.name} is not served: variant model {version} "
                    f"cannot be loaded ({type(exc).__name__}: {exc}); stop the experiment"
                )
                if self.experiment_error != message:  # log once per cause
                    log.error("%s", message)
                self.experiment_error = message
                return None
        self.experiment_error = None
        return experiment

    def _live(self, experiment: RunningExperiment, active: ServingModel | None) -> LiveExperiment:
        models: dict[str, ServingModel | None] = {}
        for variant in experiment.variants:
            if variant.model_version is None:
                models[variant.name] = None
            elif active is not None and active.version == variant.model_version:
                models[variant.name] = active
            else:
                models[variant.name] = overlay(
                    self._variants[variant.model_version], self._catalogue
                )
        return LiveExperiment(experiment=experiment, models=models)

    def by_version(self, version: str) -> ServingModel:
        """Any registered version (for side-by-side scenarios), cached per process."""
        cur = self.current
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
