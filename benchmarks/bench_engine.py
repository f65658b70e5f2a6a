"""Time the engine on MNIST-sized synthetic embeddings for the paper's §5.1 grids.

10 classes, 6,000 training and 1,000 test embeddings per class, 512-d, several Gaussian
modes per class; one seed. Prints seconds, configurations per second, peak memory, and the
speed-up of shared work over evaluating a sample of configurations one at a time. The host's
peak is the process's so far (one grid per run, `--grids aggfocus`, gives that grid's own).

Beside each grid's time: its cost in GEMM-equivalents, the grid's seconds over those of one
dominant matrix product measured in the same run (all test rows × all training rows × D,
float32, best of 3), so the figure reads the same on any machine.

Grids: the paper's aggfixed and aggfocus, and mixed264: NORMpre = NORMinf in {none, l2} ×
NORMpost {none, l2, quantile} × GEN {mean, all, ls, kmeans k = 1/5/20, kls/kmedoids/fps/random/
cov_max k = 5} × AGG {max inner product, max euclidean (1-NN), mNN m = 5 cosine uniform, mNN
m = 5 euclidean distance-weighted}: 264 configurations of every family at once.

    python benchmarks/bench_engine.py                     # aggfixed and aggfocus, full size
    python benchmarks/bench_engine.py --grids mixed264    # the mixed grid
    python benchmarks/bench_engine.py --scale 0.1         # a tenth of the samples
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd
import torch

from imprint.engine.evaluate import evaluate_grid
from imprint.engine.grid import expand_grid, load_grid


def synthetic(n_train: int, n_test: int, dim: int, classes: int, modes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, modes, dim)).astype(np.float32)

    def draw(n):
        y = np.repeat(np.arange(classes), n)
        mode = rng.integers(0, modes, size=y.shape[0])
        x = centres[y, mode] + rng.normal(scale=1.5, size=(y.shape[0], dim)).astype(np.float32)
        return np.abs(x), y  # non-negative like post-ReLU features

    return (*draw(n_train), *draw(n_test))


def mixed264_parts() -> list[dict]:
    """The mixed grid's parts (see the module docstring): 264 configurations, one seed."""
    gens = [
        {"gen": ["mean", "all", "ls"]},
        {"gen": ["kmeans"], "k": [1, 5, 20]},
        {"gen": ["kls", "kmedoids", "fps", "random", "cov_max"], "k": [5]},
    ]
    aggs = [
        {"agg": ["max"], "distance": ["inner_product"]},
        {"agg": ["max"], "distance": ["euclidean"]},
        {"agg": ["mnn"], "distance": ["cosine"], "weighting": ["uniform"], "m": [5]},
        {
            "agg": ["mnn"],
            "distance": ["euclidean"],
            "weighting": ["weighted_by_distance"],
            "m": [5],
        },
    ]
    norms = [
        {"norm_pre": [n], "norm_inf": [n], "norm_post": ["none", "l2", "quantile"]}
        for n in ("none", "l2")
    ]
    return [{**n, **g, **a} for n in norms for g in gens for a in aggs]


def grid_parts(name: str) -> list[dict]:
    if name == "mixed264":
        return mixed264_parts()
    _, grid = load_grid(f"paper:{name}")
    return grid["parts"] if "parts" in grid else [grid]


def gemm_seconds(n_test: int, n_train: int, dim: int, device: str | None) -> float:
    """Best of 3 of one float32 product [n_test, dim] @ [dim, n_train] on the engine's device."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n_test, dim, generator=gen).to(device)
    b = torch.randn(n_train, dim, generator=gen).to(device)
    best = float("inf")
    for _ in range(3):
        if device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        _ = a @ b.T
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--grids",
        nargs="+",
        default=["aggfixed", "aggfocus"],
        choices=["aggfixed", "aggfocus", "mixed264"],
    )
    p.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the 6,000/1,000 samples per class"
    )
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--modes", type=int, default=3)
    p.add_argument("--naive-sample", type=int, default=20, help="configurations timed one by one")
    p.add_argument("--device", default=None)
    args = p.parse_args()

    n_train, n_test = int(6000 * args.scale), int(1000 * args.scale)
    xtr, ytr, xte, yte = synthetic(n_train, n_test, args.dim, 10, args.modes)
    print(
        f"data: 10 classes × {n_train} train / {n_test} test, {args.dim}-d, {args.modes} modes; "
        f"torch threads {torch.get_num_threads()}, device {args.device or 'auto'}"
    )
    gemm = gemm_seconds(len(yte), len(ytr), args.dim, args.device)
    print(
        f"one {len(yte)} × {len(ytr)} × {args.dim} float32 matrix product (best of 3): "
        f"{gemm:.3f} s = 1 GEMM-equivalent"
    )
    for name in args.grids:
        parts = grid_parts(name)
        configs = expand_grid([{**part, "seeds": [17121997]} for part in parts], where=name)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        res = evaluate_grid(
            xtr,
            ytr,
            xte,
            yte,
            configs,
            classes=list(range(10)),
            ls_lambda=1e-4,
            device=args.device,
            progress=True,
        )
        total = time.perf_counter() - t0
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        on_gpu = ""
        if torch.cuda.is_available() and args.device != "cpu":
            on_gpu = f" (host), {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (GPU)"
        print(
            f"{name}: {len(configs)} configurations in {total:.1f} s = {total / gemm:.1f} "
            f"GEMM-equivalents, {len(configs) / total:.2f} configurations/s; "
            f"peak memory so far {peak_gib:.2f} GiB{on_gpu}; mean accuracy {res.accuracy.mean():.2f} %"
        )
        if args.naive_sample:
            # Stratified by GEN (costs differ by orders of magnitude between GENs): time a few
            # configurations of each alone and scale each GEN's mean by its count.
            per_gen = max(1, args.naive_sample // configs["gen"].nunique())
            sample = pd.concat(
                g.sample(min(per_gen, len(g)), random_state=0)
                for _, g in configs.groupby("gen", sort=False)
            )
            alone = {}
            for i in sample.index:
                t0 = time.perf_counter()
                evaluate_grid(
                    xtr,
                    ytr,
                    xte,
                    yte,
                    configs.loc[[i]],
                    classes=list(range(10)),
                    ls_lambda=1e-4,
                    device=args.device,
                )
                alone.setdefault(configs.at[i, "gen"], []).append(time.perf_counter() - t0)
            counts = configs["gen"].value_counts()
            naive_total = sum(counts[g] * np.mean(t) for g, t in alone.items())
            means = ", ".join(f"{g} {np.mean(t):.2f} s" for g, t in sorted(alone.items()))
            print(
                f"  one at a time ({len(sample)} configurations, {per_gen} per GEN): {means}; "
                f"estimated {naive_total:.0f} s for the grid, so shared work is "
                f"{naive_total / total:.1f}x faster"
            )


if __name__ == "__main__":
    main()
