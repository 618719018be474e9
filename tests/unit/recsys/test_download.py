"""Downloads are verified and atomic; exercised offline on a locally made archive."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import zipfile
from pathlib import Path
from typing import BinaryIO

import pytest

from backend.recsys.download import ARCHIVES, DatasetArchive, download_dataset
from backend.recsys.errors import ChecksumMismatchError, DataError, DownloadError


def _zip(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buf.getvalue()


def _archive(tmp_path: Path, payload: bytes, **overrides: str) -> dict[str, DatasetArchive]:
    source = tmp_path / "served" / "tiny.zip"
    source.parent.mkdir()
    source.write_bytes(payload)
    fields = {
        "url": source.as_uri(),
        "folder": "tiny",
        "sha256": hashlib.sha256(payload).hexdigest(),
        "md5": hashlib.md5(payload).hexdigest(),
        **overrides,
    }
    return {"tiny": DatasetArchive(**fields)}


PAYLOAD = _zip({"tiny/u.data": "1\t1\t5\t1\n2\t2\t3\t2\n", "tiny/README": "tiny"})


def test_pinned_checksums_of_the_official_archives() -> None:
    assert ARCHIVES["ml-100k"].md5 == "0e33842e24a9c977be4e0107933c0723"
    assert ARCHIVES["ml-100k"].url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert all(len(a.sha256) == 64 for a in ARCHIVES.values())


def test_verified_archive_is_extracted(tmp_path: Path) -> None:
    seen: list[float] = []
    dest = tmp_path / "data"
    folder = download_dataset(
        "tiny", dest, archives=_archive(tmp_path, PAYLOAD), progress=lambda f, m: seen.append(f)
    )
    assert folder == dest / "tiny"
    assert (folder / "u.data").read_text() == "1\t1\t5\t1\n2\t2\t3\t2\n"
    assert sorted(p.name for p in dest.iterdir()) == ["tiny"]  # no temporary files left
    assert seen[-1] == 1.0
    # A second call finds the folder and does not download again.
    assert download_dataset("tiny", dest, archives={"tiny": _archive_that_fails()}) == folder


def _archive_that_fails() -> DatasetArchive:
    return DatasetArchive(url="file:///nonexistent.zip", folder="tiny", sha256="0" * 64)


@pytest.mark.parametrize("field", ["sha256", "md5"])
def test_checksum_mismatch_is_refused_and_leaves_nothing(tmp_path: Path, field: str) -> None:
    archives = _archive(tmp_path, PAYLOAD, **{field: "f" * (64 if field == "sha256" else 32)})
    dest = tmp_path / "data"
    with pytest.raises(ChecksumMismatchError, match=field):
        download_dataset("tiny", dest, archives=archives)
    assert list(dest.iterdir()) == []


def test_no_network_is_a_download_error(tmp_path: Path) -> None:
    def offline(url: str) -> BinaryIO:
        raise urllib.error.URLError("Temporary failure in name resolution")

    with pytest.raises(DownloadError, match=r"name resolution.*download the archive by hand"):
        download_dataset("ml-100k", tmp_path, opener=offline)
    assert not (tmp_path / "ml-100k").exists()


def test_archive_escaping_its_folder_is_refused(tmp_path: Path) -> None:
    evil = _zip({"tiny/ok": "x", "../evil": "x"})
    with pytest.raises(DownloadError, match="outside the expected folder"):
        download_dataset("tiny", tmp_path / "data", archives=_archive(tmp_path, evil))
    assert not (tmp_path / "evil").exists()


def test_not_a_zip_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="not a valid zip"):
        download_dataset("tiny", tmp_path / "data", archives=_archive(tmp_path, b"<html>"))
    with pytest.raises(DataError, match="unknown data set 'ml-5m'"):
        download_dataset("ml-5m", tmp_path)
