"""Provenance: summary.json and reports name the critix commit a process loaded, and say "unknown" when critix
is not a git checkout (or the file is not tracked there) rather than naming some other repository's commit."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from critix import provenance
from critix.bench.report import run_commits
from critix.stats.runs import RunData

GIT = ["git", "-c", "user.name=critix-test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"]


def load_copy(path: Path) -> ModuleType:
    """Import a copy of critix/provenance.py from `path` as a fresh module (its commit is read at import)."""
    spec = importlib.util.spec_from_file_location(f"provenance_copy_{abs(hash(str(path)))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_commit_of_a_checkout_is_read_at_import_and_marks_uncommitted_changes(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run([*GIT, "init", "-q", str(repo)], check=True)
    (repo / "README").write_text("another project")
    subprocess.run([*GIT, "-C", str(repo), "add", "README"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "zero"], check=True)
    copy = repo / "provenance.py"
    shutil.copy(provenance.__file__, copy)
    assert load_copy(copy).source_commit() == "unknown"  # untracked in that repo: not critix's source

    subprocess.run([*GIT, "-C", str(repo), "add", "provenance.py"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "one"], check=True)
    head = subprocess.run([*GIT, "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    clean = load_copy(copy)
    assert clean.source_commit() == head

    copy.write_text(copy.read_text() + "\n# an edit\n")
    assert load_copy(copy).source_commit() == f"{head} (uncommitted changes)"
    assert clean.source_commit() == head  # read once at import: a later edit does not change what it reports


def test_outside_a_git_checkout_the_commit_is_unknown(tmp_path: Path) -> None:
    copy = tmp_path / "provenance.py"
    shutil.copy(provenance.__file__, copy)
    assert load_copy(copy).source_commit() == "unknown"


def run(summary: dict[str, object] | None) -> RunData:
    return RunData(Path("r"), "sac", "Pendulum-v1", np.zeros(0), np.zeros((1, 0)), None, summary)


def test_report_lists_the_commits_finished_runs_trained_at() -> None:
    runs = [run({"critix_commit": "abc1234"}), run({"critix_commit": "abc1234"}), run({"critix_commit": "def5678"}),
            run({}), run(None)]
    assert run_commits(runs) == ("commit abc1234 (2 runs), commit def5678 (1 run), "
                                 "commit not recorded (1 run: summary.json older than the field)")
    assert run_commits([run(None)]) == "no finished run yet"
