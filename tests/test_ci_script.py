""".ci/run: the default suite and then the slow tests, both always run, the job failing if either
fails or if together they overrun the budget. Run against a stand-in `make` that records its
targets and fails or hangs as each case asks; the Makefile's test targets are checked as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

FAKE_MAKE = """#!/bin/bash
echo "$1" >> "$CALLS"
case " $FAIL " in *" $1 "*) exit 3 ;; esac
case " $HANG " in *" $1 "*) sleep 600 ;; esac
exit 0
"""


def run_ci(tmp_path, fail: str = "", hang: str = "", budget_s: int = 3600) -> tuple[int, list[str], str]:
    """Run a copy of .ci/run in a checkout-like directory whose `make` is the stand-in."""
    (tmp_path / ".ci").mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "make").write_text(FAKE_MAKE)
    (bin_dir / "make").chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.unlink(missing_ok=True)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", CALLS=str(calls), FAIL=fail, HANG=hang,
               CI_BUDGET_S=str(budget_s))
    proc = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], env=env, capture_output=True, text=True,
                          timeout=120)
    return proc.returncode, calls.read_text().split(), proc.stdout + proc.stderr


def test_both_suites_run_and_pass(tmp_path):
    code, calls, _ = run_ci(tmp_path)
    assert (code, calls) == (0, ["install", "test", "test-slow"])


@pytest.mark.parametrize("failing", ["test", "test-slow"])
def test_a_failing_suite_fails_the_job_and_the_other_still_runs(tmp_path, failing):
    code, calls, output = run_ci(tmp_path, fail=failing)
    assert code != 0 and calls == ["install", "test", "test-slow"]
    assert f"make {failing} failed" in output


def test_a_failed_install_runs_no_tests(tmp_path):
    code, calls, _ = run_ci(tmp_path, fail="install")
    assert code != 0 and calls == ["install"]


def test_overrunning_the_budget_fails_the_job(tmp_path):
    code, calls, output = run_ci(tmp_path, hang="test", budget_s=2)
    assert code != 0 and calls[:2] == ["install", "test"]
    assert "ran past the 2s budget" in output


def test_the_makefile_targets_select_the_suites():
    """`make test` takes pytest.ini's default selection (slow tests excluded), `make test-slow`
    replaces it with the slow tests; both print the 20 slowest tests."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    recipes = dict(re.findall(r"^(test|test-slow):.*\n\t(.+)$", makefile, re.MULTILINE))
    assert " -m slow" not in recipes["test"] and "--durations=20" in recipes["test"]
    assert "-m slow" in recipes["test-slow"] and "--durations=20" in recipes["test-slow"]
    assert 'addopts = -m "not slow"' in (REPO_ROOT / "pytest.ini").read_text()
