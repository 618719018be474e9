"""Every ``recflow`` command line README.md shows works as shown.

The commands are read from README.md's fenced code blocks: each shell line (``\\`` continuations
joined) is split at ``;``, ``&&``, ``&`` and ``|``, and every part that starts with ``recflow`` is a
command. They run in README order in one embedded installation, as a reader following the README
would: a fresh working directory with its own ``var/`` data dir (RECFLOW_DATA_DIR) and MovieLens
at ``../shared/data/ml-100k``. A few need a service or run until stopped; those are checked with
``--help`` appended (their options must still exist), and :data:`HELP_ONLY` says why for each.

What a reader brings is set up first: ``export.csv`` (the A/B export the README analyses) and
A/B events of experiment ``homepage`` in the landing directory (what ``recflow produce
--simulate`` writes; the README's own line sends them for a minute, so it is help only).
No README command line has a placeholder (``<...>``); one that had would fail here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backend.cli.app import app

REPO = Path(__file__).resolve().parents[3]
# Another README (e.g. a proposed version) can be checked with README_UNDER_TEST=path.
README = Path(os.environ.get("README_UNDER_TEST") or REPO / "README.md")

# Commands checked with --help: (command words and flags that select them) -> why.
HELP_ONLY: dict[tuple[str, ...], str] = {
    ("api",): "serves HTTP until stopped",
    ("worker",): "runs jobs until stopped",
    ("flower",): "serves its UI until stopped",
    ("monitor",): "consumes events until stopped",
    ("jobs", "submit"): "talks to a running API",
    ("ingest", "--follow"): "streams until stopped",
    ("produce", "--simulate"): "sends traffic for a minute (its --duration)",
    ("simulate", "precompute", "--to-redis"): "writes to Redis",
    ("simulate-loop",): "talks to a running API with an experiment started",
}
OPERATORS = {";", "&&", "&", "||", "|"}
PLACEHOLDER = re.compile(r"<[^>]+>")
# A shell line that runs recflow: at its start or after an operator (diagrams are not read).
COMMAND_START = re.compile(r"(^|[;&|])\s*recflow\s")


def readme_commands(text: str) -> list[list[str]]:
    """The argv (after ``recflow``) of every command in the README's code blocks, in order."""
    commands: list[list[str]] = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if not COMMAND_START.search(line):
                continue
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            segment: list[str] = []
            for token in [*lexer, ";"]:
                if token not in OPERATORS:
                    segment.append(token)
                    continue
                if segment[:1] == ["recflow"]:
                    commands.append(segment[1:])
                segment = []
    return commands


def selects(key: tuple[str, ...], argv: list[str]) -> bool:
    return argv[:1] == [key[0]] and all(word in argv for word in key[1:])


def help_only(argv: list[str]) -> str | None:
    """Why ``argv`` is checked with --help only, or None when it runs."""
    return next((why for key, why in HELP_ONLY.items() if selects(key, argv)), None)


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_the_readme_is_read() -> None:
    assert len(COMMANDS) >= 20
    assert ["validate", "-f", "ml-100k", "--path", "../shared/data/ml-100k", "-k", "5",
            "--n-jobs", "2"] in COMMANDS  # fmt: skip
    assert not [argv for argv in COMMANDS if any(PLACEHOLDER.search(a) for a in argv)]


def test_every_help_only_entry_names_a_readme_command() -> None:
    # The list stays as small as the README needs.
    assert [key for key in HELP_ONLY if not any(selects(key, a) for a in COMMANDS)] == []


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_every_readme_command_parses(argv: list[str]) -> None:
    # Options are parsed before --help acts: an option the command lacks fails here.
    res = CliRunner().invoke(app, [*argv, "--help"], prog_name="recflow")
    assert res.exit_code == 0, f"recflow {shlex.join(argv)}: {res.output}"


def recflow_executable() -> list[str]:
    script = Path(sys.executable).with_name("recflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "backend.cli"]


@pytest.fixture
def workdir(tmp_path: Path, ml100k_dir: Path) -> Iterator[Path]:
    """A reader's working directory: MovieLens beside it, as beside the repository."""
    work = tmp_path / "recflow"
    work.mkdir()
    shared = tmp_path / "shared" / "data"
    shared.mkdir(parents=True)
    (shared / "ml-100k").symlink_to(ml100k_dir, target_is_directory=True)
    rows = [f"u{u},{'AB'[u % 2]},{1 + u % 4},{int(u % 7 == 0)}" for u in range(400)]
    (work / "export.csv").write_text("user,variant,impressions,clicks\n" + "\n".join(rows) + "\n")
    yield work


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*recflow_executable(), *argv], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=900, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.spark
def test_every_readme_command_runs(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECFLOW_")}
    env["RECFLOW_DATA_DIR"] = str(workdir / "var")
    setup = ["produce", "--simulate", "--ctr", "A=0.05,B=0.06", "--count", "4000",
             "--rate", "1000000", "--experiment", "homepage"]  # fmt: skip
    done = run(setup, workdir, env)
    assert done.returncode == 0, done.stderr
    failures = []
    for argv in COMMANDS:
        args = [*argv, "--help"] if help_only(argv) else argv
        done = run(args, workdir, env)
        if done.returncode != 0:
            failures.append(
                f"recflow {shlex.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-1000:]}{done.stderr[-2000:]}"
            )
    assert not failures, "\n\n".join(failures)
