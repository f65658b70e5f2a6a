"""Embedding extraction: run a frozen backbone over a dataset and keep the features."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from imprint import io
from imprint.backbones import build_backbone, get_spec, resolve_weights, weights_label
from imprint.datasets import build_dataset, dataset_targets


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


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def extract_embeddings(
    model: nn.Module,
    dataset: Dataset,
    transform: Callable,
    batch_size: int = 256,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed every image of `dataset` in order: (float32 [N, D], int64 labels [N]).

    Grayscale images are repeated to 3 channels before `transform`. The model is moved to
    `device` (default: CUDA when available, else CPU) and run in float32 under inference mode.
    """
    if len(dataset) == 0:
        raise ValueError("cannot extract embeddings from an empty dataset")
    device = torch.device(device) if device is not None else default_device()
    cuda = device.type == "cuda"
    model = model.to(device).eval()
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    loader = DataLoader(
        _Transformed(dataset, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=cuda,
    )
    features, labels = [], []
    with torch.inference_mode():
        for images, targets in tqdm(
            loader, desc="embedding", unit="batch", file=sys.stderr, disable=not progress
        ):
            images = images.to(device, non_blocking=True)
            if cuda and images.ndim == 4:
                images = images.contiguous(memory_format=torch.channels_last)
            out = model(images)
            features.append(out.flatten(1).float().cpu().numpy())
            labels.append(targets.numpy())
    return (
        np.concatenate(features).astype(np.float32, copy=False),
        np.concatenate(labels).astype(np.int64, copy=False),
    )


def first_per_class(dataset: Dataset, limit: int) -> Subset:
    """The first `limit` samples of every label, in dataset order (a deterministic subset)."""
    targets = dataset_targets(dataset)
    keep = np.concatenate(
        [np.flatnonzero(targets == c)[:limit] for c in np.unique(targets)] or [np.array([], int)]
    )
    return Subset(dataset, np.sort(keep).tolist())


def extract_to_file(
    backbone_name: str,
    dataset_name: str,
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
) -> Path:
    """Build dataset and backbone, extract embeddings and write them with io.save_embeddings."""
    dataset = build_dataset(dataset_name, root, split, download=download, classes=classes)
    if limit_per_class is not None:
        dataset = first_per_class(dataset, limit_per_class)
    model, transform, _ = build_backbone(backbone_name, weights, image_size=image_size)
    device = torch.device(device) if device is not None else default_device()
    embeddings, labels = extract_embeddings(
        model, dataset, transform, batch_size, num_workers, device, progress
    )
    meta = {
        "backbone": backbone_name,
        "weights": weights_label(resolve_weights(backbone_name, weights)),
        "image_size": image_size if image_size is not None else get_spec(backbone_name).image_size,
        "dataset": dataset_name,
        "split": split,
        "classes": None if classes is None else [int(c) for c in classes],
        "limit_per_class": limit_per_class,
        "n": int(embeddings.shape[0]),
        "dim": int(embeddings.shape[1]),
        "dtype": "float32",
        "device": str(device),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }
    return io.save_embeddings(out_path, embeddings, labels, meta)
