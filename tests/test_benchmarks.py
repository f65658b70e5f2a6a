"""The benchmarks and the prepared GPU check run end to end at toy sizes (on the CPU here).

They are timed elsewhere; these tests only keep them from rotting between the sessions that
have a GPU to run them on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_gpu_check_script_runs_every_step(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "GPU_CHECK_SMOKE": "1"}
    # The limits are sized for a GPU; on a shared CPU the smoke's steps need more (it checks
    # the script, not the timings).
    env["GPU_CHECK_LIMITS"] = "300 300 300 300 300"
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (tmp_path / "summary.txt").read_text().splitlines()
    steps = ["pytest_gpu", "bench_extract", "bench_engine_aggfixed", "bench_engine_aggfocus"]
    steps += ["engine_cpu_vs_cuda"]
    assert [line.split(":")[0] for line in summary] == steps
    assert all(": exit 0 after" in line for line in summary), summary
    assert "rel. error" in (tmp_path / "bench_extract.log").read_text()
    engine = (tmp_path / "bench_engine_aggfixed.log").read_text()
    assert "294 configurations in" in engine and "313 configurations in" in engine
    assert "2087 configurations in" in (tmp_path / "bench_engine_aggfocus.log").read_text()
    compared = (tmp_path / "engine_cpu_vs_cuda.log").read_text()
    assert "aggfixed: 0 of 294 rows differ" in compared and "mixed313: 0 of 313 rows" in compared


def test_gpu_check_steps_end_at_their_limit_with_every_child(tmp_path):
    # A "python" that leaves a child ignoring SIGTERM behind (as a stuck DataLoader worker
    # could): each step must still end at its limit, the child be killed, the run fail.
    marker = "317.5"  # an unusual sleep length, to find leftovers by
    fake = tmp_path / "python"
    fake.write_text(
        f"#!/usr/bin/env bash\n"
        f'[[ $1 == - ]] && exec "{sys.executable}" "$@"\n'
        f"(trap '' TERM; exec sleep {marker}) &\n"
        "wait\n"
    )
    fake.chmod(0o755)
    env = {
        **os.environ,
        "OUT": str(tmp_path / "out"),
        "PYTHON": str(fake),
        "GPU_CHECK_SMOKE": "1",
        "GPU_CHECK_LIMITS": "1 1 1 1 1",
    }
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    summary = (tmp_path / "out/summary.txt").read_text().splitlines()
    assert len(summary) == 5 and all("exit 124" in s and "(time limit)" in s for s in summary)
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert left.stdout == "", "a step's child outlived its limit"


def test_gpu_check_refuses_a_machine_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    env.pop("GPU_CHECK_SMOKE", None)
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "no CUDA device" in (tmp_path / "summary.txt").read_text()
    assert not (tmp_path / "pytest_gpu.log").exists()


def run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess:
    """A benchmark script at toy size, reading the library from workflow/; it must succeed."""
    done = subprocess.run(
        [sys.executable, f"benchmarks/{script}", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "workflow")},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_bench_memory_runs():
    args = ("--dim", "8", "--train-per-class", "6", "--test-per-class", "2", "--k", "1", "2")
    assert "peak" in run_benchmark("bench_memory.py", *args).stdout.lower()


def test_bench_distances_runs_and_the_chosen_path_is_exact():
    args = ("--scale", "0.005", "--dim", "16", "--methods", "reference", "numba", "chosen")
    out = run_benchmark("bench_distances.py", *args).stdout
    chosen = [line for line in out.splitlines() if " chosen " in f" {line} "]
    assert chosen and all("bit-equal" in line and " rows" not in line for line in chosen), out


def test_bench_engine_mixed_grids_report_gemm_equivalents_and_compare_results(tmp_path):
    args = ("--grids", "mixed264", "mixed313", "--scale", "0.01", "--dim", "8")
    out = run_benchmark(
        "bench_engine.py", *args, "--naive-sample", "0", "--save", str(tmp_path)
    ).stdout
    assert "= 1 GEMM-equivalent" in out
    assert re.search(r"mixed264: 264 configurations in [\d.]+ s = [\d.]+ GEMM-equivalents", out)
    assert re.search(r"mixed313: 313 configurations in [\d.]+ s = [\d.]+ GEMM-equivalents", out)
    # A kept table with one accuracy changed: --compare finds exactly that row.
    kept = tmp_path / "mixed313.csv"
    lines = kept.read_text().splitlines()
    cells = lines[5].split(",")
    at = lines[0].split(",").index("accuracy")
    cells[at] = str(float(cells[at]) + 1e-9)
    kept.write_text("\n".join([*lines[:5], ",".join(cells), *lines[6:]]) + "\n")
    out = run_benchmark(
        "bench_engine.py", *args, "--naive-sample", "0", "--compare", str(tmp_path)
    ).stdout
    assert "mixed264: 0 of 264 rows differ" in out and "(every accuracy and F1 equal)" in out
    assert "mixed313: 1 of 313 rows differ" in out
    # Nothing kept to compare with: a clear error before any work.
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_engine.py", *args, "--compare", str(tmp_path / "no")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "workflow")},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "no mixed264.csv there (write it with --save" in done.stderr


def test_bench_paper_prints_the_cost_table():
    # The paper's oracle experiment (GEN ls, its representative 2048-d) at a tiny scale: the
    # group count the planning code gives, one table row, the total and the largest cost.
    import yaml

    from imprint.planning.jobs import experiment_groups

    config = yaml.safe_load((ROOT / "workflow/configs/paper.yaml").read_text())
    groups = len(experiment_groups(config, "oracle"))
    args = ("--experiments", "oracle", "--scale", "0.002", "--seeds", "1", "--repeats", "1")
    out = run_benchmark("bench_paper.py", *args).stdout
    assert "oracle: MNIST/resnet50/none/all, synthetic 120 train × 20 test × 2048-d" in out, out
    assert re.search(rf"^ *oracle +{groups} +1×3 +1 +[\d,.]+ +[\d,.]+ +[\d,.]+ +[\d,.]+", out, re.M)
    assert re.search(r"^total: [\d,.]+ h \(seconds per group × groups\)", out, re.M), out
    assert "largest cost: oracle" in out


def test_mutation_dry_run_prints_the_plan_without_the_tool():
    # The plan needs neither mutmut nor cosmic-ray (they are not project dependencies).
    out = run_benchmark("mutation.py", "--dry-run").stdout
    assert "mutmut over 8 module(s), 40 min in all:" in out, out
    assert "workflow/imprint/engine/incremental.py: tests/engine/test_incremental.py" in out
    args = ("--dry-run", "--modules", "imprint.engine.generate", "--functions")
    out = run_benchmark("mutation.py", *args, "engine/generate.py=kmeans_fit*").stdout
    assert "generate.py (functions kmeans_fit*): tests/engine/test_components.py" in out, out
    done = subprocess.run(
        [sys.executable, "benchmarks/mutation.py", "--dry-run", "--modules", "engine/nope.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "no module workflow/imprint/engine/nope.py" in done.stderr


def test_mutation_places_a_method_mutant_on_its_file_line(monkeypatch):
    # mutmut diffs a method dedented out of its class, numbered within the function.
    import importlib.util

    spec = importlib.util.spec_from_file_location("mutation", ROOT / "benchmarks/mutation.py")
    mutation = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mutation", mutation)  # its dataclasses look it up
    spec.loader.exec_module(mutation)
    source = ["class A:", "    def f(self, x):", "        y = x + 1", "        return y < 2"]
    diff = "--- a\n+++ a\n@@ -1,3 +1,3 @@\n def f(self, x):\n     y = x + 1\n-    return y < 2\n+    return y <= 2"
    assert mutation.locate(source, diff) == (4, ["    return y < 2"], ["    return y <= 2"])
    # coverage.py numbers a statement by its first line: a continuation line ran with it.
    assert mutation.line_run(5, ({3, 4}, {6})) and not mutation.line_run(7, ({3, 4}, {6}))


def test_bench_stitching_reports_products_and_every_pair():
    args = ("--train", "300", "--test", "60", "--dims", "16", "16", "8", "12", "--task-iter", "2")
    out = run_benchmark("bench_stitching.py", *args, "--check-precision").stdout
    assert "direct + orthogonal, 12 ordered pairs, float64:" in out, out
    assert re.search(r"^stitching: [\d.]+ s = [\d.]+ products$", out, re.M), out
    assert "precision (b0_16 -> b1_16)" in out and "kNN (60 × 60 × 16, k 10)" in out
    assert "task loss (b0_16 -> b1_16, mean classifier, 2 L-BFGS iterations, float32)" in out


def test_bench_transferability_estimators_times_each_with_gemm_equivalents():
    args = ("--scale", "0.02", "--dim", "24", "--classes", "6")
    out = run_benchmark("bench_transferability_estimators.py", *args).stdout
    for name in ("sfda", "nleep", "parc", "gbc", "ped", "embedding_size"):
        assert re.search(
            rf"^  {name} +[\d.]+ s = +[\d.]+ GEMM-eq  value -?[\d.e+-]+$", out, re.M
        ), out
    assert "slowest:" in out and "72 × 24 float32 rows, 6 classes" in out


def test_bench_incremental_methods_quick_runs_every_method():
    out = run_benchmark("bench_incremental_methods.py", "--quick").stdout
    for method in ("fecam", "ranpac", "fetril"):
        assert re.search(rf"^  {method} +3 sessions +[\d.]+ s = +[\d.]+ GEMM-eq", out, re.M), out
