"""Time FeCAM, RanPAC and FeTrIL (workflow/imprint/engine/incremental_methods.py) over every
session of the CIFAR-100 few-shot protocol's shapes (issue target: each method ≤ 60 s on the
project's 2-core CPU).

Synthetic, non-negative (ReLU-like) embeddings: 100 classes, each a Gaussian around its own
centre; the base session has 60 classes × 500 rows, then 8 sessions of 5 classes × 5 shots;
10,000 test rows (100 per class). Beside each time: GEMM-equivalents, the seconds over those
of one 10,000 × 30,000 × 768 float32 product (test rows × base rows) in the same run; and the
last session's accuracy over all 100 classes (a sanity check, not a result).

    python benchmarks/bench_incremental_methods.py                 # the protocol's size
    python benchmarks/bench_incremental_methods.py --quick         # seconds, for the tests
    python benchmarks/bench_incremental_methods.py --ranpac-m 10000   # the paper's M
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_engine import gemm_seconds

from imprint.engine.incremental_methods import METHODS, run_method_sessions


def protocol(dim, base, base_rows, sessions, ways, shots, test_per_class, spread=0.2, seed=0):
    """(sessions as (features, classes), test features, test classes), float32, non-negative."""
    rng = np.random.default_rng(seed)
    n_classes = base + sessions * ways
    centres = rng.normal(size=(n_classes, dim)).astype(np.float32) * spread

    def draw(classes, n):
        y = np.repeat(np.asarray(classes), n)
        x = centres[y] + rng.normal(size=(len(y), dim)).astype(np.float32)
        return np.maximum(x, 0.0), y

    out = [draw(range(base), base_rows)]
    for s in range(sessions):
        first = base + s * ways
        out.append(draw(range(first, first + ways), shots))
    test_x, test_y = draw(range(n_classes), test_per_class)
    return out, test_x, test_y


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="toy sizes (seconds)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--ranpac-m", type=int, default=None, help="RanPAC's M (default: the paper's)")
    p.add_argument("--fetril-solver", default="lbfgs", choices=("lbfgs", "liblinear"))
    args = p.parse_args(argv)
    if args.quick:
        shape = dict(dim=16, base=6, base_rows=20, sessions=2, ways=2, shots=5, test_per_class=5)
    else:
        shape = dict(dim=768, base=60, base_rows=500, sessions=8, ways=5, shots=5)
        shape["test_per_class"] = 100
    sessions, test_x, test_y = protocol(**shape)
    n_base = sum(len(y) for _, y in sessions[:1])
    gemm = gemm_seconds(len(test_x), n_base, shape["dim"], "cpu")
    print(
        f"{sum(len(y) for _, y in sessions):,} training rows × {shape['dim']} in "
        f"{len(sessions)} sessions, {len(test_x):,} test rows; torch threads "
        f"{torch.get_num_threads()}; one {len(test_x)} × {n_base} × {shape['dim']} product "
        f"{gemm:.3f} s"
    )
    options = {
        "fecam": None,
        "ranpac": {"M": args.ranpac_m or (64 if args.quick else 10_000)},
        "fetril": {"solver": args.fetril_solver},
    }
    n_classes = shape["base"] + shape["sessions"] * shape["ways"]
    for method in args.methods:
        start = time.perf_counter()
        preds = list(run_method_sessions(method, sessions, test_x, 0, options[method]))
        seconds = time.perf_counter() - start
        seen = test_y < n_classes
        acc = float((preds[-1][seen] == test_y[seen]).mean() * 100)
        extra = ", ".join(f"{k} {v}" for k, v in (options[method] or {}).items())
        print(
            f"  {method:7s} {len(preds)} sessions {seconds:8.2f} s = {seconds / gemm:7.1f} "
            f"GEMM-eq; last-session accuracy {acc:.2f} %{'; ' + extra if extra else ''}"
        )


if __name__ == "__main__":
    main()
