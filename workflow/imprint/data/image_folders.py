"""Image datasets from a class-per-folder tree (`image_folder` in the config), as torch Datasets."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from imprint.data.folder_layout import folder_samples, load_rgb

logger = logging.getLogger(__name__)


class FolderImages(Dataset):
    """(file, label) pairs of a folder tree, served as 8-bit RGB PIL images.

    `classes`: the class names indexed by label; `skipped`: the unreadable files left out.
    """

    def __init__(self, samples: list[tuple[Path, int]], classes: list[str], skipped: list[Path]):
        self.samples = samples
        self.targets = np.asarray([label for _, label in samples], dtype=np.int64)
        self.classes = list(classes)
        self.skipped = list(skipped)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        path, label = self.samples[index]
        return load_rgb(path), int(label)


def build_image_folder(
    spec: Mapping, split: str, classes: list[int] | None = None, where: str = "image_folder"
) -> FolderImages:
    """The `split` of an image_folder spec ({train, test} or {root, test_fraction, seed}),
    optionally only the listed labels. Unreadable files are skipped and logged (a class left
    without a readable image is an error naming its folder)."""
    names, samples, skipped = folder_samples(spec, split, where)
    if skipped:
        logger.warning(
            "%s: skipped %d unreadable image file(s), e.g. %s",
            where,
            len(skipped),
            ", ".join(str(p) for p in skipped[:10]),
        )
    if classes is not None:
        bad = [c for c in classes if not 0 <= c < len(names)]
        if bad:
            raise ValueError(f"{where}: class ids {bad} out of range 0..{len(names) - 1}")
        samples = [s for s in samples if s[1] in set(classes)]
    return FolderImages(samples, names, skipped)
