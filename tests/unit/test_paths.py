"""confine(): every path a request or a job names stays inside the allowed roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backend.config import Settings
from backend.paths import PathNotAllowedError, allowed_roots, confine, confine_member, confine_tree


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Settings, Path, Path]:
    """Settings whose data dir is ``tmp/var``, an extra root ``tmp/extra``, and ``tmp/outside``."""
    data = tmp_path / "var"
    extra = tmp_path / "extra"
    outside = tmp_path / "outside"
    for d in (data, extra, outside):
        d.mkdir()
    return Settings(data_dir=data, data_roots=[extra]), data, outside


def refused(raw: str | Path, settings: Settings, reason: str, **kwargs: object) -> str:
    with pytest.raises(PathNotAllowedError) as info:
        confine(raw, settings, field="data.path", **kwargs)  # type: ignore[arg-type]
    assert info.value.reason == reason, info.value.message
    assert info.value.status_code == 422
    return info.value.message


def test_allowed_roots_are_resolved_and_listed_once(tmp_path: Path) -> None:
    data = tmp_path / "var"
    s = Settings(data_dir=data, data_roots=[data, tmp_path / "x" / ".." / "y"])
    assert allowed_roots(s) == [data.resolve(), (data / "uploads").resolve(), tmp_path / "y"]


def test_a_file_inside_the_data_dir_or_a_data_root_is_accepted(
    roots: tuple[Settings, Path, Path], tmp_path: Path
) -> None:
    settings, data, _ = roots
    (data / "r.csv").write_text("user,item,rating\n")
    (tmp_path / "extra" / "e.csv").write_text("user,item,rating\n")
    assert confine(data / "r.csv", settings) == (data / "r.csv").resolve()
    assert confine(str(tmp_path / "extra" / "e.csv"), settings) == tmp_path / "extra" / "e.csv"
    uploads = settings.uploads_dir
    uploads.mkdir()
    (uploads / "u.csv").write_text("x\n")
    assert confine(uploads / "u.csv", settings) == (uploads / "u.csv").resolve()


def test_relative_paths_resolve_against_the_working_directory(
    roots: tuple[Settings, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, data, _ = roots
    (data / "r.csv").write_text("x\n")
    monkeypatch.chdir(data)
    assert confine("r.csv", settings) == data / "r.csv"
    monkeypatch.chdir(data.parent / "outside")
    refused("r.csv", settings, "outside_roots")


def test_outside_paths_are_refused_with_the_field_and_the_roots(
    roots: tuple[Settings, Path, Path],
) -> None:
    settings, data, outside = roots
    (outside / "secret.csv").write_text("TOKEN\n")
    message = refused(outside / "secret.csv", settings, "outside_roots")
    assert message.startswith("data.path must be inside one of the allowed roots: ")
    for root in allowed_roots(settings):
        assert str(root) in message
    assert "RECFLOW_DATA_ROOTS" in message and "secret.csv" not in message
    # `..` climbing out of a root is resolved first, then refused.
    refused(f"{data}/../outside/secret.csv", settings, "outside_roots")
    refused("/etc/passwd", settings, "outside_roots")


def test_a_missing_file_outside_says_outside_not_missing(
    roots: tuple[Settings, Path, Path],
) -> None:
    settings, data, outside = roots
    # No oracle: whether a file exists outside the roots is never revealed.
    refused(outside / "nope.csv", settings, "outside_roots")
    message = refused(data / "nope.csv", settings, "not_found")
    assert message == "data.path: no such file or directory inside the allowed roots"
    assert confine(data / "new", settings, must_exist=False, kind="dir") == data / "new"


def test_a_symlink_inside_a_root_pointing_outside_is_refused(
    roots: tuple[Settings, Path, Path],
) -> None:
    settings, data, outside = roots
    (outside / "secret.csv").write_text("TOKEN\n")
    (data / "link.csv").symlink_to(outside / "secret.csv")
    (data / "dirlink").symlink_to(outside, target_is_directory=True)
    refused(data / "link.csv", settings, "outside_roots")
    refused(data / "dirlink" / "secret.csv", settings, "outside_roots")
    refused(data / "dirlink", settings, "outside_roots", kind="dir")
    # A link that stays inside is followed.
    (data / "real.csv").write_text("x\n")
    (data / "inner.csv").symlink_to(data / "real.csv")
    assert confine(data / "inner.csv", settings) == data / "real.csv"


def test_proc_is_refused_even_when_a_root_covers_it(tmp_path: Path) -> None:
    everything = Settings(data_dir=tmp_path, data_roots=[Path("/")])
    refused("/proc/self/environ", everything, "outside_roots")
    refused("/sys/kernel/hostname", everything, "outside_roots", must_exist=False)
    refused("/proc/self/environ", Settings(data_dir=tmp_path), "outside_roots")


def test_a_fifo_a_device_and_a_directory_are_not_files(
    roots: tuple[Settings, Path, Path],
) -> None:
    settings, data, _ = roots
    os.mkfifo(data / "pipe")
    refused(data / "pipe", settings, "not_regular")
    refused(data / "pipe", settings, "not_regular", kind="any")
    refused(data, settings, "is_a_directory")
    (data / "f.csv").write_text("x\n")
    refused(data / "f.csv", settings, "not_a_directory", kind="dir")
    everything = Settings(data_dir=data, data_roots=[Path("/dev")])
    refused("/dev/null", everything, "not_regular")


def test_nul_bytes_and_empty_paths_are_refused(roots: tuple[Settings, Path, Path]) -> None:
    settings, data, _ = roots
    refused(f"{data}/a\x00.csv", settings, "nul_byte")
    refused("", settings, "empty")
    refused("   ", settings, "empty")


def test_a_symlink_loop_is_refused(roots: tuple[Settings, Path, Path]) -> None:
    settings, data, _ = roots
    (data / "a").symlink_to(data / "b")
    (data / "b").symlink_to(data / "a")
    refused(data / "a", settings, "unresolvable")


def test_files_over_the_size_cap_are_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, max_input_bytes=10)
    (tmp_path / "small.csv").write_bytes(b"0123456789")
    (tmp_path / "big.csv").write_bytes(b"0123456789A")
    assert confine(tmp_path / "small.csv", settings) == tmp_path / "small.csv"
    message = refused(tmp_path / "big.csv", settings, "too_large")
    assert message == (
        "data.path is 11 bytes, over the input size limit of 10 bytes (RECFLOW_MAX_INPUT_BYTES)"
    )


def test_a_folder_member_is_checked_like_a_file(roots: tuple[Settings, Path, Path]) -> None:
    settings, data, outside = roots
    release = data / "ml-100k"
    release.mkdir()
    (outside / "passwd").write_text("root:x:0:0\n")
    (release / "u.data").symlink_to(outside / "passwd")
    with pytest.raises(PathNotAllowedError) as info:
        confine_member(release, "u.data", settings, field="data.path")
    assert info.value.reason == "outside_roots"
    with pytest.raises(PathNotAllowedError) as info:
        confine_member(release, "u.item", settings, field="data.path")
    assert info.value.reason == "not_found" and "u.item" in info.value.message
    big = Settings(data_dir=data, max_input_bytes=3)
    (release / "u.item").write_text("1|Toy Story\n")
    with pytest.raises(PathNotAllowedError) as info:
        confine_member(release, "u.item", big, field="data.path")
    assert info.value.reason == "too_large"


def test_a_folder_tree_is_checked_entry_by_entry(roots: tuple[Settings, Path, Path]) -> None:
    settings, data, outside = roots
    folder = data / "parquet"
    (folder / "date=1").mkdir(parents=True)
    (folder / "date=1" / "a.parquet").write_bytes(b"x" * 6)
    (folder / "b.parquet").write_bytes(b"y" * 4)
    assert confine_tree(folder, settings, field="data.path") == 10
    capped = Settings(data_dir=data, max_input_bytes=9)
    with pytest.raises(PathNotAllowedError) as info:
        confine_tree(folder, capped, field="data.path")
    assert info.value.reason == "too_large"
    assert confine_tree(folder, capped, field="data.path", cap=False) == 10
    (outside / "c.parquet").write_bytes(b"z")
    (folder / "date=1" / "c.parquet").symlink_to(outside / "c.parquet")
    with pytest.raises(PathNotAllowedError) as info:
        confine_tree(folder, settings, field="data.path")
    assert info.value.reason == "outside_roots" and "date=1/c.parquet" in info.value.message
    assert str(outside) not in info.value.message
    (folder / "date=1" / "c.parquet").unlink()
    os.mkfifo(folder / "pipe")
    with pytest.raises(PathNotAllowedError) as info:
        confine_tree(folder, settings, field="data.path")
    assert info.value.reason == "not_regular"


def test_data_roots_setting_reads_a_path_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECFLOW_DATA_ROOTS", f"/srv/a{os.pathsep}/srv/b,/srv/c")
    assert Settings().data_roots == [Path("/srv/a"), Path("/srv/b"), Path("/srv/c")]
    monkeypatch.setenv("RECFLOW_DATA_ROOTS", "")
    assert Settings().data_roots == []
    monkeypatch.delenv("RECFLOW_DATA_ROOTS")
    assert Settings().data_roots == [] and Settings().max_input_bytes == 2 * 2**30
