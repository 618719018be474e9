"""Versioned model artifacts on disk: plain NumPy and JSON files, checked by a manifest.

A version directory holds

* ``factors.npz``: user_factors, item_factors, user_bias, item_bias, seen_indptr, seen_indices,
  item_popularity (numeric arrays; loads with ``allow_pickle=False``),
* ``ids.npz``: user_ids and item_ids as fixed-width unicode arrays,
* ``params.json``: algorithm, params, global_mean, rating_scale and the shapes,
* ``metrics.json``, ``fingerprint`` (of the training data),
* ``items.json`` (optional): item metadata (item, title, genres) that serving shows and filters on,
* ``manifest.json``: sha256 and size of every other file.

It is written to a temporary sibling directory and renamed into place, so a reader sees either
no version or a complete one. A saved version is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.recsys.errors import CorruptArtifactError, DataError
from backend.recsys.model import FactorModel

FORMAT_VERSION = 1
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FACTOR_ARRAYS = (
    "user_factors", "item_factors", "user_bias", "item_bias",
    "seen_indptr", "seen_indices", "item_popularity",
)  # fmt: skip
_FILES = ("factors.npz", "ids.npz", "params.json", "metrics.json", "fingerprint")
ITEMS_FILE = "items.json"


@dataclass(frozen=True, eq=False)
class LoadedArtifact:
    """A verified artifact: the model, its metrics, the data fingerprint, the manifest, and the
    item metadata when it was saved with some."""

    model: FactorModel
    metrics: dict[str, Any]
    fingerprint: str
    manifest: dict[str, Any]
    path: Path
    items: list[dict[str, Any]] | None = None


def save_artifact(
    model: FactorModel,
    root: Path,
    version: str,
    *,
    metrics: dict[str, Any],
    fingerprint: str,
    items: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``model`` as ``root/version`` atomically and return that directory.

    ``items`` (item metadata: one ``{"item", "title", "genres"}`` record per item) is stored as
    ``items.json``, covered by the manifest like every other file.

    Raises ``DataError`` for an invalid version name, an existing version, or metrics or items
    that are not JSON values (NaN included: report a missing value as ``None``).
    """
    if not _VERSION_RE.match(version):
        raise DataError(
            f"version {version!r} must be 1-64 characters of [A-Za-z0-9._-] starting with a "
            "letter or digit"
        )
    root = Path(root)
    target = root / version
    if target.exists():
        raise DataError(f"model version {version!r} already exists in {root}; pick a new version")
    metrics_text = _json(metrics, "metrics")
    params_text = _json(
        {
            "format": FORMAT_VERSION,
            "algorithm": model.algorithm,
            "params": model.params,
            "global_mean": model.global_mean,
            "rating_scale": list(model.rating_scale),
            "n_users": model.n_users,
            "n_items": model.n_items,
            "n_factors": model.n_factors,
        },
        "params",
    )
    items_text = None if items is None else _items_json(items)
    names = _FILES if items_text is None else (*_FILES, ITEMS_FILE)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".tmp", dir=root))
    try:
        with (tmp / "factors.npz").open("wb") as fh:
            arrays = {name: np.ascontiguousarray(getattr(model, name)) for name in _FACTOR_ARRAYS}
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # the stub lets a dict fill allow_pickle
        with (tmp / "ids.npz").open("wb") as fh:
            np.savez(
                fh,
                user_ids=np.asarray(model.user_ids, dtype=np.str_),
                item_ids=np.asarray(model.item_ids, dtype=np.str_),
            )
        (tmp / "params.json").write_text(params_text, encoding="utf-8")
        (tmp / "metrics.json").write_text(metrics_text, encoding="utf-8")
        (tmp / "fingerprint").write_text(fingerprint, encoding="utf-8")
        if items_text is not None:
            (tmp / ITEMS_FILE).write_text(items_text, encoding="utf-8")
        manifest = {
            "format": FORMAT_VERSION,
            "version": version,
            "files": {name: {"sha256": _sha256(tmp / name), "bytes": (tmp / name).stat().st_size}
                      for name in names},
        }  # fmt: skip
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        for name in (*names, "manifest.json"):
            _fsync(tmp / name)
        os.chmod(tmp, 0o755)
        try:
            tmp.rename(target)
        except OSError as exc:
            raise DataError(
                f"model version {version!r} was created concurrently in {root}"
            ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_artifact(path: Path) -> LoadedArtifact:
    """Read and verify an artifact directory written by ``save_artifact``.

    Raises ``CorruptArtifactError`` naming the file when a file is missing, differs from the
    manifest's sha256, or holds arrays of the wrong shape or type. Item metadata is read only
    when the manifest lists it (and so vouches for it).
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"model artifact {path} does not exist")
    manifest = _read_json(path, "manifest.json")
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) - {ITEMS_FILE} != set(_FILES):
        raise CorruptArtifactError(f"manifest.json in {path} does not list the artifact's files")
    names = _FILES if ITEMS_FILE not in files else (*_FILES, ITEMS_FILE)
    for name in names:
        file = path / name
        if not file.is_file():
            raise CorruptArtifactError(f"{name} is missing from the model artifact {path}")
        digest = _sha256(file)
        if digest != files[name].get("sha256"):
            raise CorruptArtifactError(
                f"{name} in {path} does not match manifest.json (sha256 {digest}, expected "
                f"{files[name].get('sha256')}); the artifact is corrupt, retrain or restore it"
            )
    params = _read_json(path, "params.json")
    arrays = _read_npz(path, "factors.npz", _FACTOR_ARRAYS)
    ids = _read_npz(path, "ids.npz", ("user_ids", "item_ids"))
    try:
        low, high = params["rating_scale"]
        model = FactorModel(
            user_ids=ids["user_ids"],
            item_ids=ids["item_ids"],
            global_mean=float(params["global_mean"]),
            user_bias=arrays["user_bias"].astype(np.float64, copy=False),
            item_bias=arrays["item_bias"].astype(np.float64, copy=False),
            user_factors=arrays["user_factors"].astype(np.float64, copy=False),
            item_factors=arrays["item_factors"].astype(np.float64, copy=False),
            seen_indptr=arrays["seen_indptr"].astype(np.int64, copy=False),
            seen_indices=arrays["seen_indices"].astype(np.int64, copy=False),
            item_popularity=arrays["item_popularity"].astype(np.int64, copy=False),
            rating_scale=(float(low), float(high)),
            algorithm=str(params["algorithm"]),
            params=dict(params["params"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptArtifactError(f"params.json in {path} lacks a field: {exc}") from exc
    _check_shapes(model, path)
    return LoadedArtifact(
        model=model,
        metrics=_read_json(path, "metrics.json"),
        fingerprint=(path / "fingerprint").read_text(encoding="utf-8").strip(),
        manifest=manifest,
        path=path,
        items=_read_items(path) if ITEMS_FILE in files else None,
    )


def _check_shapes(m: FactorModel, path: Path) -> None:
    nu, ni = m.n_users, m.n_items
    problems = [
        name
        for name, ok in (
            ("user_factors", m.user_factors.shape[:1] == (nu,) and m.user_factors.ndim == 2),
            ("item_factors", m.item_factors.shape[:1] == (ni,) and m.item_factors.ndim == 2),
            ("factor widths", m.user_factors.shape[1:] == m.item_factors.shape[1:]),
            ("user_bias", m.user_bias.shape == (nu,)),
            ("item_bias", m.item_bias.shape == (ni,)),
            ("seen_indptr", m.seen_indptr.shape == (nu + 1,)),
            (
                "seen_indices",
                m.seen_indices.shape
                == (int(m.seen_indptr[-1]) if nu + 1 == m.seen_indptr.size else -1,),
            ),
            ("item_popularity", m.item_popularity.shape == (ni,)),
        )
        if not ok
    ]
    if problems:
        raise CorruptArtifactError(
            f"factors.npz in {path} has inconsistent shapes ({', '.join(problems)})"
        )


def _read_npz(path: Path, name: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path / name, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise CorruptArtifactError(f"{name} in {path} lacks {', '.join(missing)}")
            return {k: data[k] for k in keys}
    except (OSError, ValueError) as exc:
        raise CorruptArtifactError(f"{name} in {path} cannot be read: {exc}") from exc


def _read_json(path: Path, name: str) -> dict[str, Any]:
    try:
        value = json.loads((path / name).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CorruptArtifactError(f"{name} is missing from the model artifact {path}") from exc
    except (OSError, ValueError) as exc:
        raise CorruptArtifactError(f"{name} in {path} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CorruptArtifactError(f"{name} in {path} is not a JSON object")
    return value


def _read_items(path: Path) -> list[dict[str, Any]]:
    try:
        value = json.loads((path / ITEMS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptArtifactError(f"{ITEMS_FILE} in {path} is not valid JSON: {exc}") from exc
    if not isinstance(value, list) or not all(isinstance(r, dict) and "item" in r for r in value):
        raise CorruptArtifactError(f"{ITEMS_FILE} in {path} is not a list of item records")
    return value


def _items_json(items: list[dict[str, Any]]) -> str:
    try:
        return json.dumps(items, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"items must be JSON values (store a missing title as None): {exc}"
        ) from exc


def _json(value: Any, what: str) -> str:
    def convert(obj: Any) -> Any:
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return float(obj)
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, tuple | set):
            return list(obj)
        raise TypeError(type(obj).__name__)

    def finite(obj: Any) -> None:
        if isinstance(obj, float) and not math.isfinite(obj):
            raise DataError(f"{what} contain {obj}; store a missing value as None")
        if isinstance(obj, dict):
            for v in obj.values():
                finite(v)
        elif isinstance(obj, list):
            for v in obj:
                finite(v)

    try:
        text = json.dumps(value, default=convert, indent=2, sort_keys=True)
    except TypeError as exc:
        raise DataError(f"{what} must be JSON values; {exc} is not") from exc
    finite(json.loads(text))
    return text


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(file: Path) -> None:
    with file.open("rb") as fh:
        os.fsync(fh.fileno())
