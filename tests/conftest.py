"""Test-session settings for parallel runs (pytest-xdist, as the README's test command runs)."""

import os

# Longest files first (seconds on a 2-core machine: test_workflow ~300, test_slurm ~140,
# test_workflow_joined ~110, test_benchmarks ~170, test_kubernetes ~60, test_own_embeddings ~40;
# the rest a few each), so that with `--dist loadfile` the workers start them together instead
# of one finishing a long file alone. xdist keeps this order only with --no-loadscope-reorder
# (by default it hands out the files with the most tests first); it gives each worker two files
# at first, so the two longest go to different workers.
LONGEST_FIRST = [
    "test_workflow.py",
    "test_slurm.py",
    "test_workflow_joined.py",
    "test_benchmarks.py",
    "test_kubernetes.py",
    "test_own_embeddings.py",
]


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file keeps its own order


def pytest_configure(config):
    # Each xdist worker gets its share of the cores for torch's own threads: two workers with
    # two OpenMP threads each on two cores made an in-process test take 63 s instead of 7.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
