"""Time the transferability estimators SFDA, NLEEP, PARC, GBC, PED (+ LogME) and the static
embedding size (issue target: each ≤ 30 s on 60,000 × 2,048 float32 embeddings of 100 classes
on the project's 2-core CPU).

Synthetic embeddings at ResNet-50 width: 100 classes × 600 rows, 3 Gaussian modes per class,
overlapping (modes `--spread` apart around a common centre, unit-scale noise), non-negative,
float32, as bench_baselines makes them. Beside each time: GEMM-equivalents, the seconds over
those of one 10,000 × 60,000 × D float32 product in the same run (the one dominant product).

    python benchmarks/bench_transferability_estimators.py              # the issue's size
    python benchmarks/bench_transferability_estimators.py --scale 0.01 --dim 32 --classes 5
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from bench_engine import gemm_seconds

from imprint.analysis.transferability.fisher import sfda
from imprint.analysis.transferability.mixture import nleep
from imprint.analysis.transferability.potential import ped
from imprint.analysis.transferability.separability import gbc, parc
from imprint.analysis.transferability.static import embedding_size

ESTIMATORS = {
    "sfda": sfda,
    "nleep": nleep,
    "parc": parc,
    "gbc": gbc,
    "ped": ped,
    "embedding_size": embedding_size,
}


def synthetic(n_per_class: int, classes: int, dim: int, spread: float, seed: int = 0):
    """Float32 rows [classes · n_per_class, dim] and their labels (module docstring)."""
    rng = np.random.default_rng(seed)
    centres = (rng.normal(size=(classes, 3, dim)) * spread + 1.0).astype(np.float32)
    y = np.repeat(np.arange(classes), n_per_class)
    mode = rng.integers(0, 3, size=y.shape[0])
    x = centres[y, mode] + rng.normal(scale=0.5, size=(y.shape[0], dim)).astype(np.float32)
    return np.abs(x), y


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the 600 rows a class")
    p.add_argument("--spread", type=float, default=0.1, help="distance of the modes")
    p.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=ESTIMATORS)
    args = p.parse_args(argv)
    x, y = synthetic(max(2, int(600 * args.scale)), args.classes, args.dim, args.spread)
    gemm = gemm_seconds(min(10_000, len(x)), len(x), args.dim, "cpu")
    print(
        f"{len(x):,} × {args.dim} float32 rows, {args.classes} classes; torch threads "
        f"{torch.get_num_threads()}; one {min(10_000, len(x)):,} × {len(x):,} × {args.dim} "
        f"product {gemm:.3f} s"
    )
    slowest = 0.0
    for name in args.estimators:
        start = time.perf_counter()
        value = ESTIMATORS[name](x, y)
        seconds = time.perf_counter() - start
        slowest = max(slowest, seconds)
        assert math.isfinite(value), (name, value)
        print(f"  {name:16s} {seconds:8.2f} s = {seconds / gemm:6.1f} GEMM-eq  value {value:.6g}")
    print(f"slowest: {slowest:.2f} s ({'within' if slowest <= 30 else 'over'} the 30 s target)")


if __name__ == "__main__":
    main()
