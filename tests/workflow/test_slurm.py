""".test/small submitted to a real one-node SLURM cluster through workflow/profiles/slurm.

Needs a running SLURM (`.ci/slurm-single-node` starts one as root; CI runs it). Skipped where
`sinfo` finds none, unless IMPRINT_REQUIRE_SLURM=1 (set by CI) makes that a failure.
"""

import os
import shutil
import subprocess

import pandas as pd
import pytest
import yaml
from _snakemake import REPO, install_config, snakemake

pytestmark = pytest.mark.slow


def slurm_partition() -> str | None:
    """The default partition of a reachable SLURM controller, or None."""
    if shutil.which("sinfo") is None:
        return None
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.stdout.split("\n"):
        if line.endswith(" up") and "*" in line:
            return line.split()[0].rstrip("*")
    return None


@pytest.fixture(scope="module")
def partition():
    name = slurm_partition()
    if name is None:
        if os.environ.get("IMPRINT_REQUIRE_SLURM") == "1":
            pytest.fail("IMPRINT_REQUIRE_SLURM=1 but no SLURM controller answers sinfo")
        pytest.skip("no SLURM cluster here (start one with .ci/slurm-single-node)")
    return name


def test_workflow_runs_on_slurm_with_the_shipped_profile(tmp_path, partition):
    # The shipped profile with its placeholders filled in for this cluster: its partition, no
    # account, and GPU requests set to 0 (this node has none; the rule itself asks for one).
    profile = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())
    profile["default-resources"].update(slurm_partition=partition, mem_mb=1000, cpus_per_task=1)
    profile["default-resources"].pop("slurm_account")
    for rule in profile["set-resources"].values():
        rule.update(slurm_partition=partition, mem_mb=1000)
        rule.pop("gpu_model", None)
        rule["gpu"] = 0
    profile.update(
        jobs=4,
        **{
            "latency-wait": 5,
            "slurm-status-command": "squeue",  # no accounting database on this cluster
            "slurm-init-seconds-before-status-checks": 2,
            "seconds-between-status-checks": 2,
            "slurm-keep-successful-logs": True,
        },
    )
    profile["set-threads"] = {rule: 1 for rule in profile["set-threads"]}
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile/config.yaml").write_text(yaml.safe_dump(profile))

    install_config("small", tmp_path)
    run = snakemake(tmp_path, "--workflow-profile", str(tmp_path / "profile"))
    log = run.stdout + run.stderr
    # Every job but the local target went through sbatch: dataset, 2 extractions, 1
    # imprinting job (both small tasks in one, planning/batches.py), the gather and the figure.
    assert log.count("has been submitted with SLURM jobid") == 6, log[-3000:]
    res = pd.read_parquet(tmp_path / "results/imprint/small.parquet")
    assert len(res) == 3 * 2 and set(res.task) == {"short", "binary"}
    assert (tmp_path / "results/figures/small/accuracy_overview.png").stat().st_size > 5000
    # SLURM ran them: every job left its own SLURM log.
    slurm_logs = list((tmp_path / ".snakemake/slurm_logs").rglob("*.log"))
    assert len([p for p in slurm_logs if "rule_imprint_grid" in str(p)]) == 1, slurm_logs
