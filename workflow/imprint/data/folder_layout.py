"""Class-per-folder image trees without torch: their classes, files, seeded split and RGB loading.

An `image_folder` spec is either `{train: DIR, test: DIR}` (two trees of the same class
folders) or `{root: DIR, test_fraction: F, seed: S}` (one tree, split per class). Classes are
the sorted folder names, labelled 0..C-1. Planning lists folders with it; the dataset
(`data/image_folders.py`) adds the readability check and the images.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

# Image file endings read (case-insensitive), as torchvision's folder reader knows them.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
DEFAULT_TEST_FRACTION = 0.2
DEFAULT_SEED = 0


class FolderError(ValueError):
    """A folder tree that cannot be a dataset; the message names the folder."""


def image_files(folder: Path) -> list[Path]:
    """The image files directly in `folder` by ending, sorted; hidden files are ignored."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def class_folders(tree: Path, where: str) -> list[Path]:
    """The class folders of a tree (sorted by name): it must exist and hold two or more."""
    if not tree.is_dir():
        raise FolderError(f"{where}: no folder {tree}")
    folders = sorted(
        (d for d in tree.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: d.name,
    )
    if len(folders) < 2:
        raise FolderError(
            f"{where}: {tree} holds {len(folders)} class folder(s); a dataset needs two or more "
            "(one folder of images per class)"
        )
    return folders


def image_trees(spec: Mapping) -> dict[str, Path]:
    """The folder trees an image_folder spec reads: {"root": …} or {"train": …, "test": …}."""
    if "root" in spec:
        return {"root": Path(spec["root"])}
    return {split: Path(spec[split]) for split in ("train", "test")}


def folder_classes(spec: Mapping, where: str = "image_folder") -> list[str]:
    """The class names (sorted folder names) of an image_folder spec, label c = position c.

    Every class folder must hold at least one image file (two in a `root` tree: one for each
    split), and a train/test pair must hold the same class folders. Errors name `where.<key>`.
    """
    names: dict[str, list[str]] = {}
    need = 2 if "root" in spec else 1
    for key, tree in image_trees(spec).items():
        folders = class_folders(tree, f"{where}.{key}")
        for folder in folders:
            if len(found := image_files(folder)) < need:
                raise FolderError(
                    f"{where}.{key}: class folder {folder} holds {len(found)} image file(s), "
                    f"needs {need} or more (endings read: {' '.join(IMAGE_EXTENSIONS)})"
                )
        names[key] = [f.name for f in folders]
    if "train" in names and names["train"] != names["test"]:
        only = sorted(set(names["train"]) ^ set(names["test"]))
        raise FolderError(
            f"{where}: the train ({spec['train']}) and test ({spec['test']}) trees must hold the "
            f"same class folders; in one only: {only[:5]}"
        )
    return next(iter(names.values()))


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) positions, sorted: per class, round(test_fraction·n) images drawn for the
    test split (at least one, and at least one left for training) by a generator seeded with
    `seed`; a class of fewer than two images is refused."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    test = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            raise FolderError(f"class {c} has {len(members)} image(s); a split needs two or more")
        n_test = min(max(1, round(test_fraction * len(members))), len(members) - 1)
        test.append(rng.permutation(members)[:n_test])
    test_idx = np.sort(np.concatenate(test)) if test else np.array([], dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


def to_rgb_image(image):
    """An opened PIL image as 8-bit RGB: 16-bit and 32-bit grey scaled to 0..255, CMYK and
    palette converted, transparency composited over white."""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = values / 257.0  # 0..65535 onto 0..255
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_rgb(path):
    """The image file at `path` (or an open binary file) decoded as 8-bit RGB (PIL)."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return to_rgb_image(image)


def readable(path) -> bool:
    """Whether PIL decodes the file at `path` (or an open binary file); JPEGs at reduced size,
    which reads every byte but is fast."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("RGB", (64, 64))  # JPEG only: decode at 1/8 scale
            image.load()
            to_rgb_image(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False
    return True


def folder_samples(
    spec: Mapping, split: str, where: str = "image_folder"
) -> tuple[list[str], list[tuple[Path, int]], list[Path]]:
    """(class names, readable (file, label) pairs of `split`, unreadable files skipped).

    Every file is checked before any is embedded, so a broken file is skipped up front; a class
    left without a readable image in the split is an error naming its folder.
    """
    classes = folder_classes(spec, where)
    key = "root" if "root" in spec else split
    tree = Path(spec[key])
    samples, skipped = [], []
    for label, name in enumerate(classes):
        files = image_files(tree / name)
        good = [p for p in files if readable(p)]
        bad = sorted(set(files) - set(good))
        skipped += bad
        if len(good) < (2 if key == "root" else 1):
            raise FolderError(
                f"{where}.{key}: class folder {tree / name} has {len(good)} readable image(s) "
                f"of {len(files)} (unreadable: {[p.name for p in bad][:5]})"
            )
        samples += [(p, label) for p in good]
    if key == "root":
        labels = np.asarray([label for _, label in samples])
        seed = spec.get("seed", DEFAULT_SEED)
        fraction = spec.get("test_fraction", DEFAULT_TEST_FRACTION)
        train_idx, test_idx = stratified_split(labels, fraction, seed)
        samples = [samples[i] for i in (train_idx if split == "train" else test_idx)]
    return classes, samples, skipped
