"""Running the real Snakemake on this repository's Snakefile from tests."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(workdir, *args, check=True):
    cmd = [
        *SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def job_counts(output: str) -> dict[str, int]:
    """Rule → job count from the 'Job stats' table of a (dry) run."""
    table = output.split("Job stats:")[1] if "Job stats:" in output else ""
    return {
        m[1]: int(m[2])
        for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)
        if m[1] != "total"
    }


# Workflow configs the tests run, one folder each as in the Snakemake catalog's workflows; their
# headers say what each exercises and how to run it by hand.
CONFIGS = REPO / ".test"


def config_path(name: str) -> Path:
    """.test/<name>/config.yaml."""
    return CONFIGS / name / "config.yaml"


def load_config(name: str) -> dict:
    """The config of .test/<name>/config.yaml as a dict (a fresh one on every call)."""
    return yaml.safe_load(config_path(name).read_text())


def install_config(name: str, workdir: Path) -> Path:
    """Copy .test/<name>/config.yaml to `workdir`/config.yaml, which the Snakefile reads when no
    --configfile is given; relative paths in it resolve against `workdir`."""
    return Path(shutil.copyfile(config_path(name), Path(workdir) / "config.yaml"))
