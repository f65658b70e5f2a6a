"""Image datasets through the Hugging Face `datasets` library (`hf` in the config; optional).

A hub id or a local `save_to_disk` directory; its image and label columns are configurable.
Images are decoded here, not by the library, so unreadable ones are found and skipped first.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from imprint.data.folder_layout import load_rgb, readable

logger = logging.getLogger(__name__)

# The spec's defaults (the schema's too).
HF_DEFAULTS = {
    "image_column": "image",
    "label_column": "label",
    "train_split": "train",
    "test_split": "test",
}


class HFImages(Dataset):
    """Rows of a `datasets.Dataset` (images undecoded), served as 8-bit RGB PIL images."""

    def __init__(self, table, image_column: str, rows: np.ndarray, targets: np.ndarray, classes):
        self.table, self.image_column = table, image_column
        self.rows = np.asarray(rows, dtype=np.int64)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.classes = classes
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return load_rgb(_image_file(self.table[int(self.rows[index])][self.image_column])), int(
            self.targets[index]
        )


def _image_file(cell):
    """An undecoded Image cell ({bytes, path}) as something PIL opens."""
    if cell is None:
        return io.BytesIO(b"")
    if cell.get("bytes") is not None:
        return io.BytesIO(cell["bytes"])
    return cell.get("path") or io.BytesIO(b"")


def _load_split(spec: Mapping, split: str, where: str):
    try:
        import datasets
    except ImportError as err:
        raise ImportError(
            f"{where}: hf datasets need the `datasets` library: pip install imprint-workflow[datasets]"
        ) from err
    path = str(spec["path"])
    name = spec.get(f"{split}_split", HF_DEFAULTS[f"{split}_split"])
    if Path(path).is_dir():
        loaded = datasets.load_from_disk(path)
    else:
        loaded = datasets.load_dataset(path)
    if isinstance(loaded, datasets.Dataset) or name not in loaded:
        have = [] if isinstance(loaded, datasets.Dataset) else list(loaded)
        raise ValueError(f"{where}: {path} has no split '{name}' (splits: {have or 'none'})")
    table = loaded[name]
    image_column = spec.get("image_column", HF_DEFAULTS["image_column"])
    label_column = spec.get("label_column", HF_DEFAULTS["label_column"])
    for column in (image_column, label_column):
        if column not in table.column_names:
            raise ValueError(
                f"{where}: {path} ({name}) has no column '{column}' (columns: {table.column_names})"
            )
    if isinstance(table.features[image_column], datasets.Image):
        table = table.cast_column(image_column, datasets.Image(decode=False))
    feature = table.features[label_column]
    classes = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    return table, image_column, np.asarray(table[label_column], dtype=np.int64), classes


def build_hf(
    spec: Mapping, split: str, classes: list[int] | None = None, where: str = "hf"
) -> HFImages:
    """The `split` of a Hugging Face dataset (spec: path, image_column, label_column,
    train_split, test_split), optionally only the listed labels; unreadable images skipped."""
    table, image_column, labels, names = _load_split(spec, split, where)
    keep = np.arange(len(labels)) if classes is None else np.flatnonzero(np.isin(labels, classes))
    good = np.asarray(
        [readable(_image_file(table[int(i)][image_column])) for i in keep], dtype=bool
    )
    dataset = HFImages(table, image_column, keep[good], labels[keep[good]], names)
    dataset.skipped = [f"{spec['path']}[{split}][{int(i)}]" for i in keep[~good]]
    if dataset.skipped:
        logger.warning("%s: skipped %d unreadable image(s)", where, len(dataset.skipped))
    empty = sorted(set(labels[keep].tolist()) - set(dataset.targets.tolist()))
    if empty:
        raise ValueError(f"{where}: {spec['path']} ({split}): no readable image of classes {empty}")
    return dataset
