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
m = 5 euclidean distance-weighted}: 264 configurations of every family at once. mixed313 adds
49 few-shot and edge cases to it (mixed313_rest): few-shot n of 1, 5, 10, 100 below, at and
above k; the other distances (cosine, Manhattan, Chebyshev, Mahalanobis); m equal to the number
of proxies (every uniform vote ties); GEN none; weibull presampling.

    python benchmarks/bench_engine.py                     # aggfixed and aggfocus, full size
    python benchmarks/bench_engine.py --grids mixed264    # the mixed grid
    python benchmarks/bench_engine.py --grids mixed313    # and its few-shot and edge cases
    python benchmarks/bench_engine.py --scale 0.1         # a tenth of the samples
    python benchmarks/bench_engine.py --save DIR          # keep each grid's results table
    python benchmarks/bench_engine.py --compare DIR       # same results as those kept?

--save with one engine and --compare with another checks a change end to end: every
configuration's accuracy and F1 must be equal, not close.
"""

from __future__ import annotations

import argparse
import io
import resource
import time
from pathlib import Path

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


def mixed313_rest() -> list[dict]:
    """The 49 few-shot and edge-case configurations mixed313 adds to mixed264."""
    l2 = {"norm_pre": ["l2"], "norm_inf": ["l2"], "norm_post": ["l2"]}
    raw = {"norm_pre": ["none"], "norm_inf": ["none"], "norm_post": ["none"]}
    max_ip = {"agg": ["max"], "distance": ["inner_product"]}
    both = ["uniform", "weighted_by_distance"]
    few = {"fewshot": [1, 5, 10, 100]}
    return [
        # few-shot: n below, at and above k (a smaller n lowers k)
        {**l2, **max_ip, **few, "gen": ["mean", "all"]},
        {**l2, **max_ip, **few, "gen": ["kmeans"], "k": [1, 5, 20]},
        {**l2, **max_ip, "gen": ["kmedoids", "fps", "random"], "k": [5], "fewshot": [1, 10]},
        {**raw, **max_ip, "gen": ["kls"], "k": [1, 5], "fewshot": [5, 10, 100]},
        {**l2, "agg": ["mnn"], "distance": ["cosine"], "weighting": ["uniform"], "m": [5]}
        | {"gen": ["all"], "fewshot": [1, 10]},
        # the other distances
        {**raw, "agg": ["mnn"], "distance": ["manhattan", "chebyshev", "mahalanobis"]}
        | {"weighting": both, "m": [5], "gen": ["kmeans"], "k": [5]},
        {**raw, "agg": ["max"], "distance": ["cosine", "manhattan", "chebyshev", "mahalanobis"]}
        | {"gen": ["kmeans"], "k": [5]},
        # m = the number of proxies: every uniform vote ties
        {**l2, "agg": ["mnn"], "distance": ["cosine", "euclidean"], "weighting": both, "m": [10]}
        | {"gen": ["mean"]},
        # untrained weights and weibull presampling
        {**l2, **max_ip, "gen": ["none"], "k": [1, 5]},
        {**l2, **max_ip, "presampling": ["weibull"], "presampling_quantiles": [[0.05, 0.95]]}
        | {"gen": ["mean", "kmeans"], "k": [5]},
    ]


def grid_parts(name: str) -> list[dict]:
    if name == "mixed264":
        return mixed264_parts()
    if name == "mixed313":
        return mixed264_parts() + mixed313_rest()
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


def keep_or_compare(res: pd.DataFrame, name: str, save: Path | None, compare: Path | None):
    """Write the results table (--save) or report how it differs from a kept one (--compare):
    every column but the timings read back from CSV, floats compared for equality."""
    res = res[[c for c in res.columns if not c.endswith("_seconds")]]
    table = res.sort_values(list(res.columns[: res.columns.get_loc("seed") + 1])).reset_index(
        drop=True
    )
    if save:
        save.mkdir(parents=True, exist_ok=True)
        table.to_csv(save / f"{name}.csv", index=False, float_format="%.17g")
    if compare:
        buffer = io.StringIO()
        table.to_csv(buffer, index=False, float_format="%.17g")
        buffer.seek(0)
        ours, kept = pd.read_csv(buffer), pd.read_csv(compare / f"{name}.csv")
        if ours.shape != kept.shape or list(ours.columns) != list(kept.columns):
            print(f"  {name}: tables differ in shape: {ours.shape} here, {kept.shape} kept")
            return
        differ = ~((ours == kept) | (ours.isna() & kept.isna())).all(axis=1)
        print(
            f"  {name}: {int(differ.sum())} of {len(ours)} rows differ from {compare / name}.csv"
            + ("" if differ.any() else " (every accuracy and F1 equal)")
        )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--grids",
        nargs="+",
        default=["aggfixed", "aggfocus"],
        choices=["aggfixed", "aggfocus", "mixed264", "mixed313"],
    )
    p.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the 6,000/1,000 samples per class"
    )
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--modes", type=int, default=3)
    p.add_argument("--naive-sample", type=int, default=20, help="configurations timed one by one")
    p.add_argument("--device", default=None)
    p.add_argument("--save", type=Path, help="write each grid's results table to DIR/GRID.csv")
    p.add_argument("--compare", type=Path, help="compare with the tables --save wrote there")
    args = p.parse_args()
    for name in args.grids if args.compare else []:
        if not (args.compare / f"{name}.csv").is_file():
            p.error(f"--compare {args.compare}: no {name}.csv there (write it with --save first)")

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
        keep_or_compare(res, name, args.save, args.compare)
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
