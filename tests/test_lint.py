"""Format and lint checks, in the test command so that it runs everything CI runs."""

import subprocess
import sys
from pathlib import Path

import pytest
from _snakemake import REPO

BIN = Path(sys.executable).parent  # the test environment's ruff and snakefmt

CHECKS = {
    # snakefmt first, as the Snakemake workflow template's CI orders them.
    "snakefmt": ["snakefmt", "--check", "Snakefile", "workflow/rules"],
    "ruff check": ["ruff", "check", "workflow", "tests", "benchmarks"],
    "ruff format": ["ruff", "format", "--check", "workflow", "tests", "benchmarks"],
}


@pytest.mark.parametrize("name", CHECKS)
def test_code_is_formatted_and_lint_free(name):
    tool, *args = CHECKS[name]
    exe = BIN / tool
    assert exe.exists(), f"{exe} missing: install the test extra (pip install -e '.[test]')"
    proc = subprocess.run([str(exe), *args], cwd=REPO, capture_output=True, text=True)
    fix = {
        "snakefmt": "snakefmt Snakefile workflow/rules",
        "ruff check": "ruff check --fix workflow tests benchmarks",
        "ruff format": "ruff format workflow tests benchmarks",
    }[name]
    assert proc.returncode == 0, f"{name} failed (try `{fix}`):\n{proc.stdout}{proc.stderr}"
