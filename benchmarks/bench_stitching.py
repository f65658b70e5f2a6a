"""Time stitching between frozen embeddings (analysis/stitching.py; issue target: direct and
orthogonal matching for all 12 ordered pairs of 4 backbones on 60,000 × 2,048 training rows
in ≤ 2 min on the project's 2-core CPU).

Synthetic embeddings of the same images for each backbone (widths --dims, default 2048, 2048,
1024, 768): a 64-d latent of 10 classes (3 Gaussian modes each) mapped by a random matrix per
backbone, plus noise, through a ReLU, float32. Prints, beside each time, its ratio to one
[rows, 2048] × [2048, 2048] float32 product measured in the same run ("products"):
  moments     the joint Gram of every backbone's training rows (every Gram and cross-product);
  targets     B's classifiers' own accuracies and the OOD reference (B's classifiers are built
              before the clock: the mean classifier, and a probe at one penalty, --probe-decay);
  fit         eigendecompositions (direct) and polar factors (orthogonal);
  evaluate    mapping test rows, residuals, accuracies, OOD fractions;
then the float32-product moments against float64 (--check-precision), torch's chunked
brute-force kNN against scikit-learn's, and task-loss matching for one pair (--task-iter
L-BFGS iterations of the mean classifier's loss, fewer than the library's 100).

    python benchmarks/bench_stitching.py                 # smoke size (--quick, the default)
    python benchmarks/bench_stitching.py --full          # the issue's size (minutes)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_engine import gemm_seconds

from imprint.analysis.stitching import (
    fit_task_loss,
    kth_neighbour_distance,
    mean_classifier,
    probe_classifier,
    stitch_all,
)
from imprint.analysis.stitching_fit import CentredSolver, joint_moments


def synthetic(n_train: int, n_test: int, dims, seed: int = 0):
    """{name: (train, test)} float32 embeddings of the same images, and the labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, 3, 64)) * 1.5
    labels = [np.arange(n) % 10 for n in (n_train, n_test)]
    latents = [
        centres[y, rng.integers(0, 3, len(y))] + rng.normal(size=(len(y), 64)) for y in labels
    ]
    sets = {}
    for i, dim in enumerate(dims):
        mix = rng.normal(size=(64, dim)) / 8.0
        parts = []
        for z in latents:
            x = (z @ mix).astype(np.float32)
            x += rng.standard_normal(x.shape, dtype=np.float32) * 0.5
            parts.append(np.maximum(x, 0.0, out=x))
        sets[f"b{i}_{dim}"] = tuple(parts)
    return sets, labels[0], labels[1]


def precision_check(sets, names) -> None:
    """float32-product moments against float64 on one pair: Gram error, direct map, residual."""
    a, b = names
    data = {k: sets[k][0] for k in names}
    start = time.perf_counter()
    exact = joint_moments(data, "float64")
    t64 = time.perf_counter() - start
    start = time.perf_counter()
    fast = joint_moments(data, "float32")
    t32 = time.perf_counter() - start
    gram_error = np.abs(fast.centred - exact.centred).max() / np.abs(exact.centred).max()
    maps = [CentredSolver(m, a).solve(b) for m in (exact, fast)]
    y = sets[b][1].astype(np.float64)
    res = [((m(sets[a][1]) - y) ** 2).sum() / (y**2).sum() for m in maps]
    weight_error = np.abs(maps[1].weight - maps[0].weight).max() / np.abs(maps[0].weight).max()
    print(
        f"precision ({a} -> {b}): joint moments float64 {t64:.1f} s, float32 products {t32:.1f} s; "
        f"Gram max rel. error {gram_error:.1e}, direct weights {weight_error:.1e}, test residual "
        f"{res[0]:.6f} (float64) vs {res[1]:.6f} (float32)"
    )


def knn_check(sets, name, rows: int) -> None:
    from sklearn.neighbors import NearestNeighbors

    train, test = sets[name][0][:rows], sets[name][1][:rows]
    start = time.perf_counter()
    ours = kth_neighbour_distance(test, train, 10)
    t_torch = time.perf_counter() - start
    start = time.perf_counter()
    theirs = (
        NearestNeighbors(n_neighbors=10, algorithm="brute").fit(train).kneighbors(test)[0][:, -1]
    )
    t_sk = time.perf_counter() - start
    print(
        f"kNN ({len(test)} × {len(train)} × {train.shape[1]}, k 10): torch chunks {t_torch:.2f} s, "
        f"sklearn brute {t_sk:.2f} s; max rel. difference {np.max(np.abs(ours - theirs) / theirs):.1e}"
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smoke size (default): 3,000 × 256-d")
    size.add_argument("--full", action="store_true", help="the issue's size: 60,000 rows")
    p.add_argument("--train", type=int, help="training rows (default 3,000; --full 60,000)")
    p.add_argument("--test", type=int, help="test rows (default 500; --full 10,000)")
    p.add_argument(
        "--dims",
        type=int,
        nargs="+",
        help="widths (default 256 256 128 96; --full 2048 2048 1024 768)",
    )
    p.add_argument("--precision", default="float64", choices=["float64", "float32"])
    p.add_argument(
        "--probe-decay", type=float, default=1e-4, help="the probe's one penalty per row"
    )
    p.add_argument("--check-precision", action="store_true")
    p.add_argument(
        "--task-iter", type=int, default=5, help="L-BFGS iterations for task loss (0: skip)"
    )
    args = p.parse_args(argv)
    n_train = args.train or (60000 if args.full else 3000)
    n_test = args.test or (10000 if args.full else 500)
    dims = args.dims or ([2048, 2048, 1024, 768] if args.full else [256, 256, 128, 96])
    start = time.perf_counter()
    sets, y_train, y_test = synthetic(n_train, n_test, dims)
    product = gemm_seconds(n_train, 2048, 2048, "cpu")
    print(
        f"{len(sets)} backbones {dims}, {n_train:,} training and {n_test:,} test rows (made in "
        f"{time.perf_counter() - start:.1f} s); torch threads {torch.get_num_threads()}; one "
        f"[{n_train}, 2048] × [2048, 2048] float32 product {product:.2f} s"
    )
    start = time.perf_counter()
    heads = {
        name: {
            "mean": mean_classifier(train, y_train),
            "probe": probe_classifier(train, y_train, penalties=[args.probe_decay * n_train]),
        }
        for name, (train, _) in sets.items()
    }
    built = time.perf_counter() - start
    print(f"classifiers (mean + probe at one penalty) for {len(heads)} targets: {built:.1f} s")
    timings = {}
    start = time.perf_counter()
    rows = stitch_all(
        sets, y_train, y_test, matchings=("direct", "orthogonal"), classifiers=heads,
        precision=args.precision, timings=timings,
    )  # fmt: skip
    total = time.perf_counter() - start
    pairs = len({(r["source"], r["target"]) for r in rows})
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
    print(f"direct + orthogonal, {pairs} ordered pairs, {args.precision}: {phases}")
    print(f"stitching: {total:.1f} s = {total / product:.1f} products")
    for r in rows[:4]:
        print(
            f"  {r['source']} -> {r['target']} {r['matching']:<10} {r['classifier']:<5} residual "
            f"{r['residual']:.4f} stitched {r['stitched_accuracy']:.2f} % target "
            f"{r['target_accuracy']:.2f} % ood {r['ood_fraction']:.3f}"
        )
    names = list(sets)
    if args.check_precision:
        precision_check(sets, names[:2])
    knn_check(sets, names[0], min(4096, n_train, n_test))
    if args.task_iter:
        a, b = names[0], names[1]
        start = time.perf_counter()
        mapping = fit_task_loss(sets[a][0], y_train, heads[b]["mean"], max_iter=args.task_iter)
        spent = time.perf_counter() - start
        accuracy = 100 * np.mean(heads[b]["mean"].predict(mapping(sets[a][1])) == y_test)
        print(
            f"task loss ({a} -> {b}, mean classifier, {args.task_iter} L-BFGS iterations, float32): "
            f"{spent:.1f} s = {spent / product:.1f} products, stitched {accuracy:.2f} %"
        )


if __name__ == "__main__":
    main()
