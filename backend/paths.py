"""Where files named by requests and job params may live, and the one check that keeps them there.

Every path a caller can name (a ratings file, a MovieLens folder, a CSV to analyse, a landing
directory) goes through :func:`confine`: it is resolved with every symlink followed, and refused
unless the result lies under one of :func:`allowed_roots` (the data dir, its uploads dir, and
each ``RECFLOW_DATA_ROOTS`` entry). Containment is checked before existence, so a refusal never
tells a caller whether a file outside the roots exists. Only regular files and directories pass
(never a FIFO, device or socket, and nothing under ``/proc`` or ``/sys``, whose files claim to be
regular), and a file over ``RECFLOW_MAX_INPUT_BYTES`` is refused. Messages name the field and
the roots, never a file's contents or the resolved path.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from backend.config import Settings
from backend.errors import InvalidInputError

PathKind = Literal["file", "dir", "any"]

# Pseudo file systems whose files look regular (size 0) but hold process and kernel state.
_PSEUDO = (Path("/proc"), Path("/sys"))


class PathNotAllowedError(InvalidInputError):
    """A path Recflow refuses to read; ``reason`` is a short code (``outside_roots``, ...)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def allowed_roots(settings: Settings) -> list[Path]:
    """The resolved roots a named path must lie under, without duplicates, in a stable order."""
    roots: list[Path] = []
    for root in (settings.data_dir, settings.uploads_dir, *settings.data_roots):
        resolved = Path(root).resolve()
        if resolved not in roots:
            roots.append(resolved)
    return roots


def is_inside(path: Path, roots: Iterable[Path]) -> bool:
    """Whether the resolved ``path`` lies under one of ``roots`` (and not in /proc or /sys)."""
    if any(path == p or path.is_relative_to(p) for p in _PSEUDO):
        return False
    return any(path == root or path.is_relative_to(root) for root in roots)


def outside_message(field: str, settings: Settings) -> str:
    roots = ", ".join(str(r) for r in allowed_roots(settings))
    return (
        f"{field} must be inside one of the allowed roots: {roots} "
        "(set RECFLOW_DATA_ROOTS to add more)"
    )


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def too_large_message(field: str, size: int, settings: Settings) -> str:
    return (
        f"{field} is {_size(size)}, over the input size limit of "
        f"{_size(settings.max_input_bytes)} (RECFLOW_MAX_INPUT_BYTES)"
    )


def confine(
    raw: str | os.PathLike[str],
    settings: Settings,
    *,
    field: str = "path",
    must_exist: bool = True,
    kind: PathKind = "file",
) -> Path:
    """The resolved path that ``raw`` names, or a :class:`PathNotAllowedError` naming ``field``.

    Relative paths are resolved against the process's working directory. ``kind`` says what
    must be there: a regular ``file`` (at most ``settings.max_input_bytes``), a ``dir``, or
    ``any`` of the two. With ``must_exist=False`` a missing path passes (a directory that the
    job creates), but whatever is there must still be of the right kind.
    """
    text = os.fspath(raw)
    if not text.strip():
        raise PathNotAllowedError(f"{field} is empty; give a file or folder path", reason="empty")
    if "\x00" in text:
        raise PathNotAllowedError(f"{field} contains a NUL byte", reason="nul_byte")
    try:
        resolved = Path(text).resolve()
    except (OSError, RuntimeError, ValueError):  # RuntimeError: a symlink loop (Python 3.11)
        raise PathNotAllowedError(
            f"{field} cannot be resolved (a symlink loop?)", reason="unresolvable"
        ) from None
    if not is_inside(resolved, allowed_roots(settings)):
        raise PathNotAllowedError(outside_message(field, settings), reason="outside_roots")
    try:
        st = resolved.stat()
    except FileNotFoundError:
        if not must_exist:
            return resolved
        raise PathNotAllowedError(
            f"{field}: no such file or directory inside the allowed roots", reason="not_found"
        ) from None
    except OSError:
        raise PathNotAllowedError(
            f"{field} cannot be read (permission denied?)", reason="unreadable"
        ) from None
    _check_kind(st, field, kind, settings)
    return resolved


def _check_kind(st: os.stat_result, field: str, kind: PathKind, settings: Settings) -> None:
    if stat.S_ISDIR(st.st_mode):
        if kind == "file":
            raise PathNotAllowedError(
                f"{field} is a directory; give the file itself", reason="is_a_directory"
            )
        return
    if not stat.S_ISREG(st.st_mode):
        raise PathNotAllowedError(
            f"{field} is not a regular file or directory (a device, FIFO or socket)",
            reason="not_regular",
        )
    if kind == "dir":
        raise PathNotAllowedError(f"{field} is a file; give a directory", reason="not_a_directory")
    if st.st_size > settings.max_input_bytes:
        raise PathNotAllowedError(
            too_large_message(field, st.st_size, settings), reason="too_large"
        )


def confine_member(folder: Path, name: str, settings: Settings, *, field: str) -> Path:
    """The file ``name`` inside an already confined ``folder`` (or ``folder`` itself when it is
    a file), checked like :func:`confine`: a MovieLens release reads named files from its folder,
    and each of them may be a link leading elsewhere."""
    target = folder / name if folder.is_dir() else folder
    if not target.exists() and not target.is_symlink():
        raise PathNotAllowedError(
            f"{field}: expected the file {name} in the folder, but it is not there",
            reason="not_found",
        )
    return confine(target, settings, field=f"{field} ({name})", kind="file")


def confine_tree(folder: Path, settings: Settings, *, field: str, cap: bool = True) -> int:
    """Check every entry under an already confined ``folder``; return the total bytes of its files.

    A reader such as pyarrow's dataset discovery follows links and opens every file of a
    folder, so each entry must resolve inside the roots and be a regular file or directory; with
    ``cap`` the files together must stay within ``settings.max_input_bytes`` (a lake is read a
    few columns at a time, so its total says little and is not capped).
    """
    roots = allowed_roots(settings)
    total = 0
    seen: set[Path] = {folder.resolve()}
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            raise PathNotAllowedError(
                f"{field}: a folder inside it cannot be read (permission denied?)",
                reason="unreadable",
            ) from None
        for entry in entries:
            name = Path(entry.path).relative_to(folder)
            try:
                target = Path(entry.path).resolve()
                st = target.stat()
            except (OSError, RuntimeError):
                raise PathNotAllowedError(
                    f"{field}: the entry {name} in the folder cannot be read",
                    reason="unreadable",
                ) from None
            if not is_inside(target, roots):
                raise PathNotAllowedError(
                    f"{field}: the entry {name} in the folder leads outside the allowed "
                    "roots; " + outside_message(field, settings),
                    reason="outside_roots",
                )
            if stat.S_ISDIR(st.st_mode):
                if target not in seen:
                    seen.add(target)
                    pending.append(Path(entry.path))
                continue
            if not stat.S_ISREG(st.st_mode):
                raise PathNotAllowedError(
                    f"{field}: the entry {name} in the folder is not a regular file",
                    reason="not_regular",
                )
            total += st.st_size
            if cap and total > settings.max_input_bytes:
                raise PathNotAllowedError(
                    too_large_message(f"{field} (the folder's files together)", total, settings),
                    reason="too_large",
                )
    return total


def shown(path: Path, settings: Settings) -> str:
    """How a response names a file the server wrote: relative to the data dir, never absolute.

    Tried as written and then resolved, so a models or lake directory that is a link to another
    disk still shows as ``models/<version>``; a path outside the data dir shows its name only.
    """
    base = settings.data_dir
    for candidate, root in (
        (path, base),
        (path.absolute(), base.absolute()),
        (path.resolve(), base.resolve()),
    ):
        if candidate.is_relative_to(root):
            return str(candidate.relative_to(root))
    parent = path.parent.name
    return f"{parent}/{path.name}" if parent else path.name
