"""Running the real Snakemake on this repository's Snakefile from tests."""

import re
import subprocess
import sys
from pathlib import Path

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


# A small offline config: digits through the pixels backbone, two GENs, two tasks, one seed.
SMALL_CONFIG = {
    "data_dir": "data",
    "datasets": {"digits": {"sources": ["digits"]}},
    "backbones": {"pixels": {}},
    "extraction": {"limit_per_class": 20},
    "mappings": {"none": {}},
    "tasks": {"short": [0, 1, 2], "binary": [0, 1]},
    "experiments": {
        "small": {
            "grid": {"seeds": [1], "gen": ["mean", "kmeans"], "k": [1, 2]},
            "datasets": ["digits"],
            "backbones": ["pixels"],
            "mappings": ["none"],
            "tasks": ["short", "binary"],
        }
    },
}
