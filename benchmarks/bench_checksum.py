"""What verifying an embedding cache's checksum costs a reader (docs/troubleshooting.md).

Writes bench_memory's largest training file (145 ImageNet classes × 1,300 rows, 2048-d float32:
1.44 GiB) with io.save_embeddings, then times, best of --repeats with the file in the page
cache:
  scan only     load_embeddings without a stored checksum: the value check every reader did
                before checksums (NaN/inf and float32-overflow scan of every row);
  verify        load_embeddings as the workflow's jobs run it: the file hashed (xxh3-128) in the
                same pass as that scan;
  hash alone    io.file_checksum of the file: the hash at write time;
  product       one 1,000 × 189,500 × 2048 float32 product (the size of scoring 1,000 test rows
                against every training row): a yardstick that reads the same on any machine.
Prints seconds, the verification's extra seconds, and that extra as a share of the scan and
of --job-seconds (default: bench_memory's job on this file, 77.5 s on the project's machine).

    python benchmarks/bench_checksum.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from imprint.io import EMBEDDINGS_FILE, META_FILE, file_checksum, load_embeddings, save_embeddings


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def write_set(folder: Path, n: int, dim: int) -> Path:
    """Random float32 rows written in blocks through a memmap (never all in memory)."""
    tmp = np.lib.format.open_memmap(
        folder / "rows.npy", mode="w+", dtype=np.float32, shape=(n, dim)
    )
    rng = np.random.default_rng(0)
    for i in range(0, n, 8192):
        tmp[i : i + 8192] = rng.standard_normal((min(8192, n - i), dim), dtype=np.float32)
    tmp.flush()
    labels = np.arange(n) % 145
    rows = np.load(folder / "rows.npy", mmap_mode="r")
    start = time.perf_counter()
    out = save_embeddings(folder / "set", rows, labels, {"backbone": "resnet50"})
    print(f"save_embeddings (writes and hashes): {time.perf_counter() - start:.2f} s")
    (folder / "rows.npy").unlink()
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=145 * 1300)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--job-seconds", type=float, default=77.5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        folder = Path(tmp)
        verified = write_set(folder, args.rows, args.dim)
        size = (verified / EMBEDDINGS_FILE).stat().st_size
        # The same arrays without checksums: the reader scans values only.
        unverified = folder / "plain"
        unverified.mkdir()
        for f in verified.iterdir():
            (unverified / f.name).symlink_to(f.resolve())
        (unverified / META_FILE).unlink()
        meta = json.loads((verified / META_FILE).read_text())
        meta.pop("checksums")
        (unverified / META_FILE).write_text(json.dumps(meta))

        def scan():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load_embeddings(unverified)

        best_of(1, lambda: load_embeddings(verified))  # page the file in
        t_scan = best_of(args.repeats, scan)
        t_verify = best_of(args.repeats, lambda: load_embeddings(verified))
        t_hash = best_of(args.repeats, lambda: file_checksum(verified / EMBEDDINGS_FILE))
        a = torch.randn(1000, args.dim)
        b = torch.randn(args.rows, args.dim)
        t_gemm = best_of(args.repeats, lambda: a @ b.T)
    extra = t_verify - t_scan
    print(
        f"file {size / 2**30:.2f} GiB ({args.rows:,} × {args.dim}, float32), page cache warm, "
        f"best of {args.repeats}, torch threads {torch.get_num_threads()}"
    )
    print(f"  scan only   {t_scan:7.3f} s  ({size / t_scan / 1e9:.1f} GB/s)")
    print(f"  verify      {t_verify:7.3f} s  ({size / t_verify / 1e9:.1f} GB/s)")
    print(f"  hash alone  {t_hash:7.3f} s  ({size / t_hash / 1e9:.1f} GB/s)")
    print(f"  product     {t_gemm:7.3f} s  (1,000 × {args.rows:,} × {args.dim} float32)")
    print(
        f"verification adds {extra:.3f} s = {extra / t_scan:.1%} of the scan, "
        f"{extra / t_gemm:.2f} products, {t_verify / args.job_seconds:.2%} of a "
        f"{args.job_seconds:g} s job for the whole read ({extra / args.job_seconds:.2%} for the hash)"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
