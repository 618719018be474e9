"""Download MovieLens releases from GroupLens, verified against pinned checksums.

The archive is streamed to a temporary file next to the destination, checked (sha256 and, where
GroupLens publishes one, md5), extracted into a temporary folder and only then renamed into
place, so a crash or a bad download never leaves a half-written data set behind.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from backend.recsys.errors import ChecksumMismatchError, DataError, DownloadError

Opener = Callable[[str], BinaryIO]
Progress = Callable[[float, str], None]

_BASE = "https://files.grouplens.org/datasets/movielens"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DatasetArchive:
    """A zip archive and the checksums it must match; ``folder`` is its top-level directory."""

    url: str
    folder: str
    sha256: str
    md5: str | None = None


# md5 values are the ones GroupLens publishes next to each archive (``<name>.zip.md5``); sha256
# values pin the exact bytes of the same archives.
ARCHIVES: Mapping[str, DatasetArchive] = {
    "ml-100k": DatasetArchive(
        url=f"{_BASE}/ml-100k.zip",
        folder="ml-100k",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        md5="0e33842e24a9c977be4e0107933c0723",
    ),
    "ml-1m": DatasetArchive(
        url=f"{_BASE}/ml-1m.zip",
        folder="ml-1m",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        md5="c4d9eecfca2ab87c1945afe126590906",
    ),
    "ml-latest-small": DatasetArchive(
        url=f"{_BASE}/ml-latest-small.zip",
        folder="ml-latest-small",
        sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
    ),
}


def _urlopen(url: str) -> BinaryIO:
    response: BinaryIO = urllib.request.urlopen(url, timeout=60)
    return response


def download_dataset(
    name: str,
    dest_dir: Path,
    *,
    opener: Opener = _urlopen,
    archives: Mapping[str, DatasetArchive] = ARCHIVES,
    progress: Progress | None = None,
) -> Path:
    """Download and unpack the release ``name`` into ``dest_dir/<folder>``; return that folder.

    Does nothing when the folder already exists. Raises ``DownloadError`` when the network or
    the archive fails and ``ChecksumMismatchError`` when the bytes differ from the pinned ones.
    ``opener`` and ``archives`` exist so that the verification can be exercised offline.
    """
    if name not in archives:
        raise DataError(f"unknown data set {name!r}; available: {', '.join(sorted(archives))}")
    archive = archives[name]
    dest_dir = Path(dest_dir)
    target = dest_dir / archive.folder
    if target.is_dir():
        return target
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=f".{name}-") as tmp:
        zip_path = Path(tmp) / "archive.zip"
        _fetch(archive.url, zip_path, archive, opener, progress)
        unpacked = Path(tmp) / "unpacked"
        _extract(zip_path, unpacked, archive.folder)
        try:
            (unpacked / archive.folder).rename(target)
        except OSError:
            # Another process finished the same download first: its copy is equally verified.
            if not target.is_dir():
                raise
    if progress:
        progress(1.0, f"{name} ready in {target}")
    return target


def _fetch(
    url: str, out: Path, archive: DatasetArchive, opener: Opener, progress: Progress | None
) -> None:
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    received = 0
    try:
        response = opener(url)
        total = int(getattr(response, "headers", {}).get("Content-Length") or 0)
        with response, out.open("wb") as fh:
            while chunk := response.read(_CHUNK):
                fh.write(chunk)
                sha256.update(chunk)
                md5.update(chunk)
                received += len(chunk)
                if progress and total:
                    progress(min(received / total, 1.0) * 0.9, f"downloaded {received} bytes")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"could not download {url}: {reason}. Check the network connection, or download the "
            f"archive by hand and unpack it so that the folder {archive.folder} exists"
        ) from exc
    if sha256.hexdigest() != archive.sha256:
        raise ChecksumMismatchError(
            f"{url} has sha256 {sha256.hexdigest()} but {archive.sha256} is pinned "
            f"({received} bytes received); the download is corrupt or the file changed upstream"
        )
    if archive.md5 is not None and md5.hexdigest() != archive.md5:
        raise ChecksumMismatchError(
            f"{url} has md5 {md5.hexdigest()} but the published md5 is {archive.md5}"
        )


def _extract(zip_path: Path, out: Path, folder: str) -> None:
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for member in zf.namelist():
                parts = PurePosixPath(member).parts
                # Refuse absolute paths and ".." so an archive cannot write outside ``out``.
                if member.startswith("/") or ".." in parts or not parts or parts[0] != folder:
                    raise DownloadError(
                        f"archive member {member!r} is outside the expected folder {folder}/"
                    )
            out.mkdir(parents=True)
            zf.extractall(out)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(out, ignore_errors=True)
        raise DownloadError(f"the downloaded file is not a valid zip archive: {exc}") from exc
