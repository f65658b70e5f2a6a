"""Embedding extraction: run a frozen backbone over a dataset and keep the features."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from imprint import io
from imprint.data.backbones import (
    batched_transform,
    build_backbone,
)
from imprint.data.datasets import (
    build_dataset,
    dataset_class_names,
    dataset_targets,
    image_array,
    skipped_images,
)
from imprint.data.folder_layout import image_trees
from imprint.engine.devices import resolve_device

logger = logging.getLogger(__name__)


def to_rgb(image):
    """Repeat a grayscale image to 3 channels (PIL image or [C, H, W] tensor); RGB passes."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, torch.Tensor) and image.ndim == 3 and image.shape[0] == 1:
        return image.expand(3, -1, -1)
    return image


class _Transformed(Dataset):
    # Transforms run inside the Dataset so DataLoader workers do the decoding and resizing.
    def __init__(self, dataset: Dataset, transform: Callable):
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, label = self.dataset[index]
        return self.transform(to_rgb(image)), int(label)


# Mixed precision is used only if the first batch's embeddings stay this close to float32's.
AMP_TOLERANCE = 1e-3
PRECISIONS = ("auto", "float32", "float16", "bfloat16")


class Extraction(NamedTuple):
    embeddings: np.ndarray  # float32 [N, D]
    labels: np.ndarray  # int64 [N]
    info: dict  # how: path (batched/per_image), precision, amp_relative_error, device


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """The largest per-row ||approx - exact|| / ||exact|| (float64; a zero row of `exact` is
    compared against the smallest positive norm, so it counts only where `approx` differs)."""
    approx, exact = approx.double().flatten(1), exact.double().flatten(1)
    norm = torch.linalg.vector_norm(exact, dim=1).clamp_min(torch.finfo(torch.float64).tiny)
    return float((torch.linalg.vector_norm(approx - exact, dim=1) / norm).max())


def mixed_precision_error(model: nn.Module, images: torch.Tensor, dtype: torch.dtype) -> float:
    """relative_error of the model's output under autocast(dtype) against float32 on `images`."""
    with torch.inference_mode():
        exact = model(images).float()
        with torch.autocast(images.device.type, dtype=dtype):
            approx = model(images).float()
    return relative_error(approx, exact)


def choose_precision(
    model: nn.Module,
    images: torch.Tensor,
    precision: str = "auto",
    tolerance: float = AMP_TOLERANCE,
) -> tuple[torch.dtype | None, float | None]:
    """(autocast dtype or None for float32, the measured error of the dtype tried last).

    'auto' tries float16 then bfloat16 on CUDA and keeps float32 elsewhere (CPU autocast is
    rarely faster for these models); 'float16'/'bfloat16' try only that one. A dtype is used
    only if its embeddings of `images` are within `tolerance` relative error of float32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; allowed: {', '.join(PRECISIONS)}")
    if precision == "auto":
        candidates = (torch.float16, torch.bfloat16) if images.device.type == "cuda" else ()
    elif precision == "float32":
        candidates = ()
    else:
        candidates = (getattr(torch, precision),)
    error = None
    for dtype in candidates:
        error = mixed_precision_error(model, images, dtype)
        if error <= tolerance:
            return dtype, error
        logger.info("%s autocast: relative error %.2e > %.0e, not used", dtype, error, tolerance)
    return None, error


def _rgb_batch(images: torch.Tensor) -> torch.Tensor:
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


# Images on which the batched transform must give the PIL path's tensors exactly.
PIL_CHECK_IMAGES = 8


def _reproduces_pil(candidate, dataset, transform, images, device) -> bool:
    """Whether `candidate`, the batched form of `transform`, gives the PIL path's tensors
    exactly on the first images of `dataset`."""
    n = min(PIL_CHECK_IMAGES, len(images))
    expected = torch.stack([transform(to_rgb(dataset[i][0])) for i in range(n)])
    try:
        got = candidate(_rgb_batch(images[:n].to(device))).cpu()
    # A Pillow whose resize neither pass order reproduces; a device without float64 (MPS).
    except (RuntimeError, TypeError) as err:
        logger.warning("batched preprocessing unavailable: %s", err)
        return False
    return got.shape == expected.shape and torch.equal(got, expected)


def _batches(dataset, transform, batch_size, num_workers, device, batched):
    """(path, number of batches, iterator of (transformed images on device, labels))."""
    cuda = device.type == "cuda"
    batch_transform = batched_transform(transform) if batched is not False else None
    images = image_array(dataset) if batch_transform is not None else None
    if batched and images is None:
        raise ValueError(
            "batched extraction needs a dataset of equal-size uint8 images and a transform that "
            "takes tensor batches (torchvision's bilinear/bicubic weights presets, pixels)"
        )
    if images is not None and not _reproduces_pil(
        batch_transform, dataset, transform, images, device
    ):
        message = (
            "the batched preprocessing does not reproduce the PIL path exactly on this "
            "dataset with this Pillow version"
        )
        if batched:
            raise ValueError(f"{message}; use batched: false (or null)")
        logger.warning("%s: using the per-image PIL path", message)
        images = None
    if images is not None:
        # Whole uint8 batches go to the device; resize, crop and normalise run there, giving
        # the PIL path's tensors bit for bit (checked on the first images above).
        labels = torch.as_tensor(dataset_targets(dataset))

        def gen():
            for start in range(0, len(images), batch_size):
                x = images[start : start + batch_size].contiguous()
                if cuda:
                    x = x.pin_memory()
                x = x.to(device, non_blocking=True)
                yield batch_transform(_rgb_batch(x)), labels[start : start + batch_size]

        return "batched", -(-len(images) // batch_size), gen()
    loader = DataLoader(
        _Transformed(dataset, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=cuda,
        persistent_workers=False,
    )
    return (
        "per_image",
        len(loader),
        ((x.to(device, non_blocking=True), y) for x, y in loader),
    )


def extract_embeddings(
    model: nn.Module,
    dataset: Dataset,
    transform: Callable,
    batch_size: int = 256,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    precision: str = "auto",
    batched: bool | None = None,
    tolerance: float = AMP_TOLERANCE,
) -> Extraction:
    """Embed every image of `dataset` in order: float32 [N, D], int64 labels [N], and how.

    Grayscale images are repeated to 3 channels before `transform`. batched=None picks the
    batched path where it applies (equal-size uint8 images and a transform with a batched form
    that reproduces the PIL path exactly on the first images: it then runs on whole batches on
    `device`), else one PIL image at a time in DataLoader workers. Runs under inference mode,
    channels-last on CUDA, in mixed precision only as `choose_precision` allows on the first
    batch.
    """
    if len(dataset) == 0:
        raise ValueError("cannot extract embeddings from an empty dataset")
    device = resolve_device(device)
    model = model.to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    path, n_batches, batches = _batches(
        dataset, transform, batch_size, num_workers, device, batched
    )
    batches = io.progress_bar(
        batches, total=n_batches, desc="embedding", unit="batch", disable=not progress
    )
    out, labels, amp, error, row = _embed_batches(
        model, batches, len(dataset), device, precision, tolerance
    )
    info = {
        "path": path,
        "precision": "float32" if amp is None else str(amp).removeprefix("torch."),
        "amp_relative_error": error,
        "device": str(device),
    }
    logger.info("extracted %d embeddings: %s", row, info)
    return Extraction(out, labels, info)


def _embed_batches(model, batches, n_rows: int, device, precision: str, tolerance: float):
    """Run `model` over `batches` (images on `device`, labels) in order, under inference mode.

    Returns (embeddings float32 [n_rows, D], labels int64 [n_rows], the autocast dtype that
    choose_precision allowed on the first batch or None for float32, its measured error, and
    the rows filled).
    """
    cuda = device.type == "cuda"
    out = labels = None
    amp, error, row = None, None, 0
    # Float32 means float32: no TF32 convolutions on CUDA (they err by ~1e-3 on their own).
    with (
        torch.inference_mode(),
        torch.backends.cudnn.flags(enabled=True, benchmark=cuda, allow_tf32=False),
    ):
        for images, targets in batches:
            if cuda and images.ndim == 4:
                images = images.contiguous(memory_format=torch.channels_last)
            if out is None:
                amp, error = choose_precision(model, images, precision, tolerance)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                features = model(images).flatten(1).float().cpu().numpy()
            if out is None:  # one preallocated array: peak memory N x D floats, not twice that
                out = np.empty((n_rows, features.shape[1]), dtype=np.float32)
                labels = np.empty(n_rows, dtype=np.int64)
            out[row : row + len(features)] = features
            labels[row : row + len(features)] = np.asarray(targets)
            row += len(features)
    return out, labels, amp, error, row


def first_per_class(dataset: Dataset, limit: int) -> Subset:
    """The first `limit` samples of every label, in dataset order (a deterministic subset)."""
    targets = dataset_targets(dataset)
    keep = np.concatenate(
        [np.flatnonzero(targets == c)[:limit] for c in np.unique(targets)] or [np.array([], int)]
    )
    return Subset(dataset, np.sort(keep).tolist())


def source_indices(dataset: Dataset) -> np.ndarray:
    """Each row's index in the dataset underneath every Subset (class selection, first n per
    class): the image identity that joins several backbones' embeddings of it."""
    if isinstance(dataset, Subset):
        return source_indices(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    return np.arange(len(dataset), dtype=np.int64)


def extract_to_file(
    backbone_name: str,
    dataset_name: str | Mapping,
    split: str,
    root: str | os.PathLike,
    out_path: str | os.PathLike,
    weights: str | os.PathLike | None = "default",
    batch_size: int = 256,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    download: bool = False,
    limit_per_class: int | None = None,
    classes: Sequence[int] | None = None,
    image_size: int | None = None,
    progress: bool = True,
    precision: str = "auto",
    batched: bool | None = None,
    model: str | None = None,
    pool: str | None = None,
    force: bool = False,
    layers: Sequence[str] | None = None,
) -> Path:
    """Build dataset and backbone, extract embeddings and write them with io.save_embeddings
    (where to write is checked first: a folder of other things is refused before the work).

    `dataset_name`: a registry name or a source mapping (build_dataset); `model`, `pool`,
    `layers`: see build_backbone. The meta records the backbone (provider, model, library
    version, layers, preprocessing, parameter_count), the class names and the files skipped.
    force: replace whatever is at `out_path` (but never an input: outputs.check_output)."""
    from imprint.outputs import check_output

    weights_file = None if weights in (None, "default") else weights
    inputs = {"weights": weights_file, "images": _image_paths(dataset_name)}
    check_output(out_path, "embeddings", inputs, force, flag="embeddings output")
    dataset = build_dataset(dataset_name, root, split, download=download, classes=classes)
    skipped = skipped_images(dataset)  # logged, with examples, where the dataset was built
    if limit_per_class is not None:
        dataset = first_per_class(dataset, limit_per_class)
    backbone = build_backbone(
        backbone_name, weights, image_size, model=model, pool=pool, layers=layers
    )
    net, transform, _ = backbone
    embeddings, labels, info = extract_embeddings(
        net, dataset, transform, batch_size, num_workers, resolve_device(device), progress,
        precision, batched,
    )  # fmt: skip
    meta = {
        "backbone": backbone_name,
        **backbone.meta,  # provider, model, provider_version, weights, image_size (, layers)
        "preprocessing": preprocessing_text(transform),
        "dataset": _dataset_label(dataset_name),
        "split": split,
        "classes": None if classes is None else [int(c) for c in classes],
        "class_names": dataset_class_names(dataset),
        "skipped_images": len(skipped),
        "limit_per_class": limit_per_class,
        **_array_meta(embeddings, info, net),
    }
    ids = source_indices(dataset)
    return io.save_embeddings(out_path, embeddings, labels, meta, ids=ids, force=force)


def parameter_count(net: torch.nn.Module) -> int | None:
    """The number of parameters of the module the extractor runs (sum of numel, frozen ones
    included), its image side only: an open_clip model counts its image tower (`visual`), a
    transformers model with a text tower (CLIP, SigLIP) leaves out its `text*` and `logit*`
    children and parameters; a layers wrapper counts the whole backbone it wraps (every
    layer, tapped or not). None for a module without parameters (the pixels backbone)."""
    from imprint.data.text_towers import OpenClipImage

    text: set[int] = set()
    for module in net.modules():
        if isinstance(module, OpenClipImage):
            image = {id(p) for p in module.clip.visual.parameters()}
            text |= {id(p) for p in module.clip.parameters()} - image
        elif hasattr(module, "get_image_features") and hasattr(module, "get_text_features"):
            for name, child in module.named_children():
                if name.startswith(("text", "logit")):
                    text |= {id(p) for p in child.parameters()}
            for name, p in module.named_parameters(recurse=False):
                if name.startswith(("text", "logit")):
                    text.add(id(p))
    count = sum(p.numel() for p in net.parameters() if id(p) not in text)
    return int(count) or None


def preprocessing_text(transform) -> str:
    """The exact preprocessing of one image, as the transform prints itself, on one line."""
    return " ".join(repr(transform).split())


def _array_meta(embeddings, info: dict, net: torch.nn.Module) -> dict:
    """What meta.json records of the array and of how it was computed (by `net`: its
    parameter_count)."""
    return {
        "parameter_count": parameter_count(net),
        "n": int(embeddings.shape[0]),
        "dim": int(embeddings.shape[1]),
        "dtype": "float32",
        **info,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }


def _image_paths(source) -> list[str]:
    """The folders (or dataset directory) a source mapping reads: inputs no output may replace."""
    if not isinstance(source, Mapping):
        return []
    if "image_folder" in source:
        return [str(tree) for tree in image_trees(source["image_folder"]).values()]
    path = (source.get("hf") or {}).get("path")
    return [str(path)] if path else []


def _dataset_label(source: str | Mapping) -> str:
    """The meta's `dataset`: a registry name, or a source mapping's dataset name (else kind)."""
    if isinstance(source, Mapping):
        return str(source.get("name") or next(iter(source)))
    return source
