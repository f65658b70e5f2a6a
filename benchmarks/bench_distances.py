"""Manhattan and Chebyshev nearest proxies: candidate implementations side by side.

The aggfocus grid's dominant cost is the mNN neighbour lists under Manhattan and Chebyshev:
2,000 test rows × 60,000 proxies × 512-d at full size (--scale 1). Each method below finds the
50 nearest proxies of every test row (ties to the lower index); each is timed in the same run as
the reference (today's path: torch.cdist in float64, chunked) and its index lists for m = 1, 5
and 50 are compared with the reference's: "exact" or the number of rows that differ.

    python benchmarks/bench_distances.py                         # --scale 0.1: 200 × 6,000
    python benchmarks/bench_distances.py --scale 1 --data random --methods reference chosen numba
    python benchmarks/bench_distances.py --device cuda --methods reference cdist32 chosen

Data (float32, non-negative clustered like post-ReLU features unless said): random; duplicates
(a third of the proxies repeat others, some test rows repeat proxies); integer (values 0..3:
exact ties everywhere); l2 (rows L2-normalised, rounded once from float64 as the engine does).
Methods: reference; cdist32 (torch.cdist in float32); broadcast (blocked torch
(x - w).abs().sum/amax in float32; minutes at --scale 1); numba (the float32 kernel alone);
faiss (IndexFlat METRIC_L1/Linf search, if faiss-cpu is installed); chosen (nearest_proxies:
the numba/torch float32 pass plus the exact float64 re-rank).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import time

import numpy as np
import pandas as pd
import torch

from imprint.engine.aggregate import nearest_proxies, unique_rows
from imprint.engine.distances import BLOCK_ELEMENTS, P_NORMS, approximate_distances
from imprint.engine.distances import smallest_stable as stable

MS = (1, 5, 50)
DATA = ("random", "duplicates", "integer", "l2")
METHODS = ("reference", "cdist32", "broadcast", "numba", "faiss", "chosen")


def synthetic(kind: str, n_test: int, n_proxies: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, dim))

    def draw(n):
        x = centres[rng.integers(0, 10, n)] + rng.normal(scale=1.5, size=(n, dim))
        return np.abs(x)

    test, proxies = draw(n_test), draw(n_proxies)
    if kind == "duplicates":
        copies = rng.choice(n_proxies, n_proxies // 3, replace=False)
        proxies[copies] = proxies[rng.integers(0, n_proxies, copies.size)]
        some = rng.choice(n_test, n_test // 4, replace=False)
        test[some] = proxies[rng.integers(0, n_proxies, some.size)]
    elif kind == "integer":
        test, proxies = np.minimum(np.round(test), 3), np.minimum(np.round(proxies), 3)
    elif kind == "l2":
        test = test / np.linalg.norm(test, axis=1, keepdims=True)
        proxies = proxies / np.linalg.norm(proxies, axis=1, keepdims=True)
    return (torch.from_numpy(a.astype(np.float32)) for a in (test, proxies))


def by_blocks(test, proxies, m, block):
    """(distances, indices) of the m nearest, from float32 blocks block(x_rows, proxies)."""
    step = max(1, BLOCK_ELEMENTS // proxies.shape[0])
    parts = [stable(block(test[s : s + step], proxies), m) for s in range(0, len(test), step)]
    return torch.cat([d for d, _ in parts]), torch.cat([i for _, i in parts])


def reference(test, proxies, distance, m):
    """Today's path: distinct proxies, torch.cdist in float64 a chunk at a time, stable top m."""
    w, expand = unique_rows(proxies)
    w, x = w.double(), test.double()
    step = max(1, 2**25 // proxies.shape[0])
    parts = []
    for s in range(0, len(x), step):
        block = torch.cdist(x[s : s + step], w, p=P_NORMS[distance]).clamp_min_(0.0)
        parts.append(stable(block if expand is None else block[:, expand], m))
    return torch.cat([d for d, _ in parts]), torch.cat([i for _, i in parts])


def broadcast_block(x, w, distance, rows=8, cols=2048):
    out = torch.empty(x.shape[0], w.shape[0], dtype=x.dtype, device=x.device)
    for i in range(0, x.shape[0], rows):
        for j in range(0, w.shape[0], cols):
            diff = (x[i : i + rows, None, :] - w[None, j : j + cols, :]).abs_()
            out[i : i + rows, j : j + cols] = (
                diff.sum(-1) if distance == "manhattan" else diff.amax(-1)
            )
    return out


def faiss_search(test, proxies, distance, m):
    import faiss

    metric = faiss.METRIC_L1 if distance == "manhattan" else faiss.METRIC_Linf
    index = faiss.IndexFlat(proxies.shape[1], metric)
    index.add(proxies.numpy())
    d, i = index.search(test.numpy(), m)
    return torch.from_numpy(d), torch.from_numpy(i)


def run(method, test, proxies, distance, m):
    p = P_NORMS[distance]
    if method == "reference":
        return reference(test, proxies, distance, m)
    if method == "cdist32":
        return by_blocks(test, proxies, m, lambda x, w: torch.cdist(x, w, p=p))
    if method == "broadcast":
        return by_blocks(test, proxies, m, lambda x, w: broadcast_block(x, w, distance))
    if method == "numba":
        return by_blocks(test, proxies, m, lambda x, w: approximate_distances(x, w, distance))
    if method == "faiss":
        return faiss_search(test, proxies, distance, m)
    return nearest_proxies(test, proxies, distance, m)


def timed(method, test, proxies, distance, m):
    if test.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = run(method, test, proxies, distance, m)
    if test.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def agreement(ref, got):
    """Per m: 'exact' or how many rows' index lists differ; and how the distances compare."""
    (rd, ri), (gd, gi) = ref, (got[0].to(ref[0].device), got[1].to(ref[1].device))
    lists = {}
    for m in MS:
        differ = int((ri[:, :m] != gi[:, :m]).any(dim=1).sum())
        lists[f"m={m}"] = "exact" if differ == 0 else f"{differ} rows"
    if gd.dtype == rd.dtype and torch.equal(gd, rd):
        lists["distances"] = "bit-equal"
    else:
        rel = ((gd.double() - rd) / rd.clamp_min(1e-30)).abs().max()
        lists["distances"] = f"max rel. diff {float(rel):.1e}"
    return lists


def installed_mib(*dists: str) -> str:
    total = 0
    for name in dists:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            return "not installed"
        total += sum(f.locate().stat().st_size for f in files if f.locate().is_file())
    return f"{total / 2**20:.0f} MiB"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--scale", type=float, default=0.1, help="of 2,000 test rows × 60,000 proxies")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--data", nargs="+", default=list(DATA), choices=DATA)
    p.add_argument("--distances", nargs="+", default=list(P_NORMS), choices=list(P_NORMS))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    methods = [m for m in args.methods if m != "reference"]
    if args.device != "cpu":
        methods = [m for m in methods if m not in ("numba", "faiss")]  # CPU-only
    if installed_mib("faiss-cpu") == "not installed":
        methods = [m for m in methods if m != "faiss"]
    n_test, n_proxies = round(2000 * args.scale), round(60000 * args.scale)
    print(
        f"{n_test} test rows × {n_proxies} proxies × {args.dim}-d, float32 inputs; torch threads "
        f"{torch.get_num_threads()}, device {args.device}; install weight: torch "
        f"{installed_mib('torch')}, numba {installed_mib('numba', 'llvmlite')}, faiss-cpu "
        f"{installed_mib('faiss-cpu')}"
    )
    for distance in args.distances:  # the first call compiles the kernel
        t0 = time.perf_counter()
        approximate_distances(torch.ones(5, 8), torch.ones(3, 8), distance)
        print(f"numba {distance} kernel compiled in {time.perf_counter() - t0:.1f} s")
    rows = []
    for kind in args.data:
        test, proxies = (a.to(args.device) for a in synthetic(kind, n_test, n_proxies, args.dim))
        for distance in args.distances:
            ref_s, ref = timed("reference", test, proxies, distance, max(MS))
            rows.append({"data": kind, "distance": distance, "method": "reference"})
            rows[-1] |= {"seconds": ref_s, "speed-up": 1.0} | agreement(ref, ref)
            for method in methods:
                s, got = timed(method, test, proxies, distance, max(MS))
                rows.append({"data": kind, "distance": distance, "method": method})
                rows[-1] |= {"seconds": s, "speed-up": ref_s / s} | agreement(ref, got)
            print(pd.DataFrame(rows[-len(methods) - 1 :]).to_string(index=False, header=False))
    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
