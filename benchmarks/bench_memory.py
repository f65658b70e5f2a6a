"""Peak memory of one imprinting job on the paper's largest ImageNet group.

§5.3's map10-j remappings merge 10 ImageNet classes into each of 10 labels: 100 classes × ~1,300
training images. The embedding files hold all 145 paper classes (here 1,300 train / 50 val
each, 2048-d like ResNet-50, float32, memory-mapped), and the job reads the rows of its mapping
only, as the workflow's imprint_grid rule does. Grid: paper:multimodal (k-means and kls)
restricted to a few k and one seed (memory does not grow with the number of configurations:
they run one proxy set after another). Prints the file size, the rows used, seconds and peak
resident memory.

    python benchmarks/bench_memory.py                # ResNet-50 width
    python benchmarks/bench_memory.py --dim 1024     # Swin-B width
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from imprint.api.evaluation import evaluate_files
from imprint.data.selections import imagenet_class_selections
from imprint.engine.grid import load_grid
from imprint.io import save_embeddings
from imprint.planning.mappings import resolve_classes


def write_split(folder: Path, classes: list[int], per_class: int, dim: int, seed: int) -> Path:
    """Class-clustered random embeddings written one class at a time (never all in memory)."""
    n = len(classes) * per_class
    folder.mkdir(parents=True)
    emb = np.lib.format.open_memmap(folder / "tmp.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    rng = np.random.default_rng(seed)
    for i, _ in enumerate(classes):
        centre = rng.normal(size=dim).astype(np.float32)
        block = rng.normal(size=(per_class, dim)).astype(np.float32)
        emb[i * per_class : (i + 1) * per_class] = np.abs(centre + block)
    emb.flush()
    labels = np.repeat(np.asarray(classes, dtype=np.int64), per_class)
    out = save_embeddings(folder / "set", np.load(folder / "tmp.npy", mmap_mode="r"), labels, {})
    (folder / "tmp.npy").unlink()
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--train-per-class", type=int, default=1300)
    p.add_argument("--test-per-class", type=int, default=50)
    p.add_argument("--k", type=int, nargs="+", default=[1, 5, 15])
    p.add_argument("--mapping", default="map10-0")
    args = p.parse_args()

    classes = resolve_classes("imagenet_paper")
    mapping = imagenet_class_selections()["remappings"][args.mapping]
    _, grid = load_grid("paper:multimodal")
    # Both parts: k-means proxies with norms, and kls (which clusters and solves per class).
    grid = {"parts": [{**part, "seeds": [17121997], "k": args.k} for part in grid["parts"]]}
    with tempfile.TemporaryDirectory() as tmp:
        train = write_split(Path(tmp) / "train", classes, args.train_per_class, args.dim, 0)
        test = write_split(Path(tmp) / "test", classes, args.test_per_class, args.dim, 1)
        size = sum(f.stat().st_size for f in train.rglob("*")) / 2**30
        # The job in a fresh process, as a workflow job runs, so its peak is its own.
        job = (train, test, grid, Path(tmp) / "out.parquet", mapping)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            n_rows, seconds = pool.apply(run_job, job)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    used = len(mapping) * args.train_per_class
    print(
        f"train file {size:.2f} GiB ({len(classes)} classes × {args.train_per_class}, {args.dim}-d); "
        f"{args.mapping} uses {used} rows ({used * args.dim * 4 / 2**30:.2f} GiB as float32)"
    )
    print(
        f"{n_rows} configurations in {seconds:.1f} s; peak resident memory of the job "
        f"{peak:.2f} GiB (memory-mapped pages it read included)"
    )


def run_job(train, test, grid, out, mapping) -> tuple[int, float]:
    start = time.perf_counter()
    res = evaluate_files(
        train, test, grid, out, classes=list(range(10)), mapping=mapping, ls_lambda=1e-4
    )
    return len(res), time.perf_counter() - start


if __name__ == "__main__":
    main()
