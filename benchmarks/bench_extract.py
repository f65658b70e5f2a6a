"""Images per second of embedding extraction: this workflow's path against the reference's.

Two paths per backbone over the same MNIST-sized synthetic images (28 x 28 grayscale, uint8):
  per-image PIL  one PIL image at a time through the weights' transforms in DataLoader workers,
                 batch 64, float32 (the reference implementation's way);
  workflow       extract_embeddings as the workflow runs it: uint8 batches resized and
                 normalised on the device (PIL's resize bit for bit; every torchvision preset),
                 channels-last on CUDA, mixed precision if within 1e-3 of float32.
Weights are random (speed does not depend on them; nothing is downloaded). Prints images/s,
the speed-up, the precision chosen and the relative error of the workflow's embeddings against
the per-image path.

    python benchmarks/bench_extract.py                              # 4 paper backbones, GPU if any
    python benchmarks/bench_extract.py --backbones resnet18 --images 256 --workers 1   # CPU smoke
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from imprint.data.backbones import build_backbone
from imprint.data.datasets import ArrayImages
from imprint.data.extract import _Transformed, extract_embeddings, relative_error
from imprint.engine.devices import resolve_device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def per_image_pil(model, dataset, transform, device, workers: int) -> tuple[float, np.ndarray]:
    """The reference's way: PIL transforms per image, batch 64, float32, no channels-last."""
    loader = DataLoader(_Transformed(dataset, transform), batch_size=64, num_workers=workers)
    model = model.to(device).eval()
    out = []
    synchronize(device)
    start = time.perf_counter()
    # TF32 off, as the workflow path runs: the reference is float32 proper on any GPU.
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        for images, _ in loader:
            out.append(model(images.to(device)).float().cpu())
    synchronize(device)
    return time.perf_counter() - start, torch.cat(out).numpy()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backbones", nargs="+", default=["resnet18", "resnet50", "vit_b_16", "swin_b"])
    p.add_argument("--images", type=int, default=None, help="default: 4096 on CUDA, 256 on CPU")
    p.add_argument("--batch-size", type=int, default=256, help="the workflow path's batch size")
    p.add_argument("--workers", type=int, default=8, help="DataLoader workers (per-image path)")
    p.add_argument("--precision", default="auto")
    p.add_argument("--device", default=None)
    args = p.parse_args()

    device = resolve_device(args.device)
    n = args.images or (4096 if device.type == "cuda" else 256)
    rng = np.random.default_rng(0)
    # Blurry blobs rather than noise, so resizing behaves as on real digits.
    images = rng.integers(0, 256, size=(n, 7, 7)).astype(np.uint8).repeat(4, 1).repeat(4, 2)
    dataset = ArrayImages(images, rng.integers(0, 10, size=n))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{n} images 28x28, device {name}, torch threads {torch.get_num_threads()}")
    print(
        f"{'backbone':<10} {'per-image PIL':>14} {'workflow':>10} {'speed-up':>9} "
        f"{'path':>10} {'precision':>10} {'rel. error':>11}"
    )
    for backbone in args.backbones:
        model, transform, _ = build_backbone(backbone, weights=None)
        # Warm-up (CUDA context, cuDNN autotuning) outside the timings.
        extract_embeddings(
            model,
            ArrayImages(images[:64], np.zeros(len(images[:64]))),
            transform,
            progress=False,
            device=device,
            precision=args.precision,
        )
        ref_s, ref = per_image_pil(model, dataset, transform, device, args.workers)
        synchronize(device)
        start = time.perf_counter()
        fast = extract_embeddings(
            model,
            dataset,
            transform,
            args.batch_size,
            num_workers=args.workers,
            device=device,
            progress=False,
            precision=args.precision,
        )
        synchronize(device)
        fast_s = time.perf_counter() - start
        err = relative_error(torch.from_numpy(fast.embeddings), torch.from_numpy(ref))
        print(
            f"{backbone:<10} {n / ref_s:>10.0f} im/s {n / fast_s:>6.0f} im/s "
            f"{ref_s / fast_s:>8.2f}x {fast.info['path']:>10} {fast.info['precision']:>10} "
            f"{err:>11.1e}"
        )


if __name__ == "__main__":
    main()
