"""Rating data sources: MovieLens files, generic CSV/Parquet and the Parquet lake.

Every source ends in the same validated ``Ratings``: a frame with columns ``user`` (str), ``item``
(str), ``rating`` (float64) and ``timestamp`` (int64 seconds), the declared rating scale and a
fingerprint of the content. Validation fails with a ``DataError`` that names the row and the
problem, because a model silently trained on a bad file is worse than no model. Messages name
rows, counts and the columns the caller asked for; they never quote the file's contents (its
values, ids or other column names) or where it is stored, since a job's error is shown to
whoever submitted it.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from backend.recsys.columns import (
    check_scale,
    id_column,
    keep_latest,
    rating_column,
    timestamp_column,
)
from backend.recsys.errors import DataError

SourceFormat = Literal["ml-100k", "ml-1m", "ml-latest", "csv", "parquet", "lake"]
SOURCE_FORMATS: tuple[str, ...] = ("ml-100k", "ml-1m", "ml-latest", "csv", "parquet", "lake")
COLUMNS = ("user", "item", "rating", "timestamp")

# The scale each MovieLens release documents in its README.
_DEFAULT_SCALES: dict[str, tuple[float, float]] = {
    "ml-100k": (1.0, 5.0),
    "ml-1m": (1.0, 5.0),
    "ml-latest": (0.5, 5.0),
}
_GENERIC_SCALE = (1.0, 5.0)

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip


@dataclass(frozen=True)
class RatingsSource:
    """Where ratings come from and how to read them.

    ``path`` is a file, or for MovieLens the release folder (``u.data``, ``ratings.dat`` or
    ``ratings.csv`` is found inside), or for ``lake`` a directory of Parquet files (partition
    folders are read too). Column names apply to ``csv``, ``parquet`` and ``lake``;
    ``timestamp_col=None`` means the file has no time column and row order stands in for time.
    ``scale=None`` takes the release's documented scale (1-5; 0.5-5 for ml-latest) and 1-5 for
    generic files.
    """

    format: SourceFormat
    path: Path
    user_col: str = "user"
    item_col: str = "item"
    rating_col: str = "rating"
    timestamp_col: str | None = "timestamp"
    scale: tuple[float, float] | None = None
    sep: str = ","


@dataclass(frozen=True, eq=False)
class Ratings:
    """Validated explicit ratings, one row per (user, item), the latest one kept.

    ``frame`` keeps the source's row order (it decides the order in which SGD sees ratings).
    ``fingerprint`` is the sha256 of the content sorted by (user, item), so it does not depend on
    file order or format. ``duplicates_dropped`` counts older ratings of a repeated (user, item);
    ``unrated_rows`` counts lake rows without a rating (clicks, views) that were skipped.
    """

    frame: pd.DataFrame
    scale: tuple[float, float]
    fingerprint: str
    duplicates_dropped: int = 0
    unrated_rows: int = 0

    @property
    def n_ratings(self) -> int:
        return len(self.frame)

    @property
    def n_users(self) -> int:
        return int(self.frame["user"].nunique())

    @property
    def n_items(self) -> int:
        return int(self.frame["item"].nunique())


def load_ratings(spec: RatingsSource) -> Ratings:
    """Read, validate and de-duplicate the ratings that ``spec`` describes."""
    if spec.format not in SOURCE_FORMATS:
        raise DataError(
            f"unknown ratings format {spec.format!r}; use one of {', '.join(SOURCE_FORMATS)}"
        )
    scale = (
        spec.scale if spec.scale is not None else _DEFAULT_SCALES.get(spec.format, _GENERIC_SCALE)
    )
    path = Path(spec.path)
    if not path.exists():
        raise DataError(f"the {spec.format} ratings path does not exist")
    unrated = 0
    source = _SOURCE_NAMES.get(spec.format, "the ratings")
    if spec.format == "ml-100k":
        raw = _read_ml100k(_inside(path, "u.data"))
        cols = ("user", "item", "rating", "timestamp")
    elif spec.format == "ml-1m":
        raw = _read_ml1m(_inside(path, "ratings.dat"))
        cols = ("user", "item", "rating", "timestamp")
    elif spec.format == "ml-latest":
        raw = _read_csv(_inside(path, "ratings.csv"), ",", source)
        cols = ("userId", "movieId", "rating", "timestamp")
    else:
        cols = (spec.user_col, spec.item_col, spec.rating_col, spec.timestamp_col or "")
        if spec.format == "csv":
            raw = _read_csv(path, spec.sep, source)
        else:
            raw = _read_parquet(path, spec.format == "lake", cols)
            if spec.format == "lake" and spec.rating_col in raw.columns:
                # The lake holds every interaction; only rows with a rating are explicit feedback.
                has_rating = raw[spec.rating_col].notna()
                unrated = int((~has_rating).sum())
                raw = raw.loc[has_rating]
    return ratings_from_frame(
        raw,
        scale,
        user_col=cols[0],
        item_col=cols[1],
        rating_col=cols[2],
        timestamp_col=cols[3] or None,
        source=source,
        unrated_rows=unrated,
    )


# How errors name each source: by role, never by where it is stored.
_SOURCE_NAMES = {
    "ml-100k": "u.data",
    "ml-1m": "ratings.dat",
    "ml-latest": "ratings.csv",
    "csv": "the CSV file",
    "parquet": "the Parquet data",
    "lake": "the lake",
}


def ratings_from_frame(
    raw: pd.DataFrame,
    scale: tuple[float, float],
    *,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str = "rating",
    timestamp_col: str | None = "timestamp",
    source: str = "the data",
    unrated_rows: int = 0,
) -> Ratings:
    """Validate a frame of ratings and turn it into ``Ratings``.

    Row numbers in error messages are 1-based positions in ``raw`` (the data row of a file).
    Keeps the latest rating of each (user, item) by timestamp (the later row on a tie).
    """
    low, high = check_scale(scale)
    wanted = [user_col, item_col, rating_col] + ([timestamp_col] if timestamp_col else [])
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise DataError(
            f"{source} has no column(s) {', '.join(map(repr, missing))} "
            f"(it has {len(raw.columns)} column(s)); name its columns with user_col, item_col, "
            "rating_col and timestamp_col"
        )
    if len(raw) == 0:
        raise DataError(f"{source} contains no ratings")

    users = id_column(raw[user_col], "user id", source)
    items = id_column(raw[item_col], "item id", source)
    ratings = rating_column(raw[rating_col], low, high, source)
    if timestamp_col:
        timestamps = timestamp_column(raw[timestamp_col], source)
    else:
        timestamps = np.arange(len(raw), dtype=np.int64)

    frame = pd.DataFrame({"user": users, "item": items, "rating": ratings, "timestamp": timestamps})
    frame, dropped = keep_latest(frame)
    n_users = frame["user"].nunique()
    if n_users < 2:
        raise DataError(
            f"{source} has ratings from a single user; "
            "collaborative filtering needs at least two users"
        )
    if frame["item"].nunique() < 2:
        raise DataError(
            f"{source} has ratings of a single item; recommendations need at least two items"
        )
    return Ratings(
        frame=frame,
        scale=(low, high),
        fingerprint=fingerprint(frame),
        duplicates_dropped=dropped,
        unrated_rows=unrated_rows,
    )


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the ratings content sorted by (user, item), independent of row order."""
    ordered = frame.sort_values(["user", "item"], kind="stable")
    digest = hashlib.sha256()
    digest.update(f"{len(ordered)}\n".encode())
    for col in ("user", "item"):
        digest.update("\x1f".join(ordered[col].tolist()).encode("utf-8"))
        digest.update(b"\x1e")
    digest.update(ordered["rating"].to_numpy(np.float64).tobytes())
    digest.update(ordered["timestamp"].to_numpy(np.int64).tobytes())
    return digest.hexdigest()


def load_items(
    path: Path, format: Literal["ml-100k", "ml-1m", "ml-latest"] = "ml-100k"
) -> pd.DataFrame:
    """Item metadata for serving filters: a frame of ``item`` (str), ``title`` and ``genres``.

    ``genres`` holds a list of genre names per item. ml-100k reads ``u.item`` (latin-1, 19 genre
    flags named by ``u.genre``); ml-1m reads ``movies.dat``; ml-latest reads ``movies.csv``.
    """
    path = Path(path)
    if format == "ml-100k":
        file = _inside(path, "u.item")
        genre_names = _ml100k_genres(file.parent / "u.genre")
        names = ["item", "title", "release", "video_release", "url", *genre_names]
        raw = pd.read_csv(
            file, sep="|", header=None, names=names, encoding="latin-1", dtype={"item": str}
        )
        flags = raw[list(genre_names)].to_numpy(dtype=bool)
        genres = [[g for g, on in zip(genre_names, row, strict=True) if on] for row in flags]
    elif format in ("ml-1m", "ml-latest"):
        if format == "ml-1m":
            text = _inside(path, "movies.dat").read_text(encoding="latin-1").replace("::", "\t")
            raw = pd.read_csv(
                io.StringIO(text), sep="\t", header=None, names=["item", "title", "genres"],
                dtype=str, quoting=3,
            )  # fmt: skip
        else:
            raw = pd.read_csv(_inside(path, "movies.csv"), dtype=str).rename(
                columns={"movieId": "item"}
            )
        genres = [
            [] if g == "(no genres listed)" or pd.isna(g) else str(g).split("|")
            for g in raw["genres"]
        ]
    else:
        raise DataError(
            f"no item metadata reader for format {format!r}; use ml-100k, ml-1m or ml-latest"
        )
    return pd.DataFrame({"item": raw["item"].astype(str), "title": raw["title"], "genres": genres})


def _inside(path: Path, name: str) -> Path:
    file = path / name if path.is_dir() else path
    if not file.is_file():
        raise DataError(f"expected the file {name} in the given folder, but it is not there")
    return file


def _read_ml100k(file: Path) -> pd.DataFrame:
    return pd.read_csv(
        file, sep="\t", header=None, names=list(COLUMNS), dtype={"user": str, "item": str}
    )


def _read_ml1m(file: Path) -> pd.DataFrame:
    # The C parser cannot split on "::"; the Python one takes seconds on 1M rows.
    text = file.read_text(encoding="latin-1").replace("::", "\t")
    return pd.read_csv(
        io.StringIO(text), sep="\t", header=None, names=list(COLUMNS),
        dtype={"user": str, "item": str},
    )  # fmt: skip


def _read_csv(file: Path, sep: str, source: str = "the CSV file") -> pd.DataFrame:
    if file.is_dir():
        raise DataError(f"{source} is a directory; give the CSV file itself")
    try:
        # Ids stay text: "007" and "7" are different users.
        return pd.read_csv(file, sep=sep, dtype=str, keep_default_na=True)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{source} is empty") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{source} is not UTF-8 text") from exc
    except pd.errors.ParserError as exc:
        # Only where it failed: the parser's own message may quote the offending text.
        line = re.search(r"line (\d+)", str(exc))
        where = f" (at line {line.group(1)})" if line else ""
        raise DataError(f"{source} is not a readable CSV with separator {sep!r}{where}") from exc


def _read_parquet(path: Path, lake: bool, cols: tuple[str, ...]) -> pd.DataFrame:
    if lake and not path.is_dir():
        raise DataError("the lake path must be a directory of Parquet files")
    if lake and not any(path.rglob("*.parquet")):
        raise DataError("the lake directory contains no .parquet files")
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        # pyarrow's message names the server's file paths; the type says enough.
        raise DataError(
            f"{'the lake' if lake else 'the Parquet data'} could not be read as Parquet "
            f"({type(exc).__name__})"
        ) from exc
    # Only the rating columns are kept; a lake row also carries event type, session, etc.
    return frame[[c for c in cols if c and c in frame.columns]] if lake else frame


def _ml100k_genres(file: Path) -> tuple[str, ...]:
    if not file.is_file():
        return ML100K_GENRES
    lines = [ln for ln in file.read_text(encoding="latin-1").splitlines() if "|" in ln]
    return tuple(ln.split("|")[0] for ln in lines)
