"""Time the baselines and estimators beside imprinting (issue targets: the linear probe with
its penalty search ≤ 60 s, every estimator ≤ 30 s on 60,000 × 2,048 embeddings of 10 classes
on the project's 2-core CPU).

Synthetic MNIST-sized embeddings at ResNet-50 width (10 classes × 6,000 training rows, 1,000
test rows per class, 3 Gaussian modes per class, non-negative), as bench_engine makes them but
with the modes `--spread` times as far apart (default 0.04: overlapping classes, the probe
reaching 66.6 % on 2026-12-07, so its optimiser meets a realistic, non-separable problem).
Beside each time: GEMM-equivalents, the seconds over those of one 10,000 × 60,000 × D float32
product in the same run.

    python benchmarks/bench_baselines.py                   # the issue's size
    python benchmarks/bench_baselines.py --dim 512 --scale 0.1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_engine import gemm_seconds

from imprint.analysis.similarity import linear_cka
from imprint.analysis.transferability.linear import h_score, logme
from imprint.analysis.transferability.ncti import ncti_components
from imprint.analysis.transferability.neighbours import loo_knn_accuracy, tmi
from imprint.engine.baselines import knn_predict, linear_probe


def overlapping(n_train: int, n_test: int, dim: int, spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = (rng.normal(size=(10, 3, dim)) * spread + 1.0).astype(np.float32)

    def draw(n):
        y = np.repeat(np.arange(10), n)
        mode = rng.integers(0, 3, size=y.shape[0])
        x = centres[y, mode] + rng.normal(scale=0.5, size=(y.shape[0], dim)).astype(np.float32)
        return np.abs(x), y

    return (*draw(n_train), *draw(n_test))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the rows")
    p.add_argument("--device", default=None)
    p.add_argument("--spread", type=float, default=0.04, help="distance of the modes (see above)")
    args = p.parse_args(argv)
    n_train, n_test = max(10, int(6000 * args.scale)), max(10, int(1000 * args.scale))
    xtr, ytr, xte, yte = overlapping(n_train, n_test, args.dim, args.spread)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gemm = gemm_seconds(len(xte), len(xtr), args.dim, device)
    print(
        f"{len(xtr):,} × {args.dim} training, {len(xte):,} test rows, 10 classes; device "
        f"{device}, torch threads {torch.get_num_threads()}; one product {gemm:.3f} s"
    )
    x, y = torch.from_numpy(xtr).to(device), torch.from_numpy(ytr).to(device)
    xt, yt = torch.from_numpy(xte).to(device), torch.from_numpy(yte).to(device)

    def timed(name, fn):
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        print(f"  {name:34s} {seconds:8.2f} s = {seconds / gemm:6.1f} GEMM-eq  {result}")

    def probe():
        fitted, search = linear_probe(x, y, 10)
        acc = float((fitted.predict(xt) == yt).double().mean() * 100)
        return f"λ = {fitted.penalty:g}, {fitted.iterations} iterations, {acc:.2f} %"

    def knn():
        preds = knn_predict(x, y, xt, 10)
        return ", ".join(
            f"k={k}: {float((p == yt).double().mean() * 100):.2f} %" for k, p in preds.items()
        )

    timed("linear probe (9 λ searched, refit)", probe)
    timed("kNN (k = 10, 20, 100, 200)", knn)
    timed("LogME", lambda: f"{logme(xtr, ytr):.4f}")
    timed("H-score", lambda: f"{h_score(xtr, ytr):.4f}")
    timed(
        "NCTI's three terms",
        lambda: ", ".join(f"{k} {v:.3f}" for k, v in ncti_components(xtr, ytr).items()),
    )
    timed("TMI (k = 3, Chebyshev)", lambda: f"{tmi(xtr, ytr):.3f}")
    timed("leave-one-out kNN (5,000 queries)", lambda: f"{loo_knn_accuracy(xtr, ytr):.2f} %")
    timed("linear CKA (train vs its square root)", lambda: f"{linear_cka(xtr, np.sqrt(xtr)):.4f}")


if __name__ == "__main__":
    main()
